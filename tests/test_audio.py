"Tests of a2v.audio: encoder loading, frame counts, chunked == whole, the embed-audio stage (resume)."
import os
from pathlib import Path
import numpy as np, pytest, torch
from a2v.core import get_config, load_tensors, MissingWeightsError, BadInputError, MissingStageOutputError
from a2v.audio import load_audio_encoder, embed_audio, n_audio_frames, embed_run, load_embedding
from a2v.vae import make_synthetic_run

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def enc(): return load_audio_encoder(get_config('tiny', device='cpu'))

def _speech(seconds, seed=0):
    g = np.random.default_rng(seed); t = np.arange(int(16000 * seconds)) / 16000
    env = np.clip(np.sin(2 * np.pi * 3.7 * t + 1), 0, None) ** 2
    return (0.3 * env * np.sin(2 * np.pi * 140 * t) + 0.01 * g.standard_normal(len(t))).astype(np.float32)

def test_tiny_is_seeded_and_leaves_global_rng(enc):
    torch.manual_seed(5); a = torch.rand(1)
    torch.manual_seed(5); e2 = load_audio_encoder(get_config('tiny', device='cpu')); b = torch.rand(1)
    assert torch.equal(a, b)
    sa, sb = enc.state_dict(), e2.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    e3 = load_audio_encoder(get_config('tiny', device='cpu', **{'audio.init_seed': 1}))
    assert not torch.equal(e3.model.encoder.layers[0].attention.q_proj.weight, enc.model.encoder.layers[0].attention.q_proj.weight)

def test_paper_encoder_offline_is_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv('A2V_CACHE', str(tmp_path)); monkeypatch.setenv('A2V_OFFLINE', '1')
    with pytest.raises(MissingWeightsError) as ei: load_audio_encoder(get_config('paper', device='cpu'))
    assert '\n' not in str(ei.value)
    with pytest.raises(BadInputError, match='no such folder'):
        load_audio_encoder(get_config('tiny', **{'audio.model': str(tmp_path/'nope')}))

def test_local_folder_loads(tmp_path, enc):
    enc.model.save_pretrained(tmp_path/'w2v')
    e2 = load_audio_encoder(get_config('tiny', device='cpu', **{'audio.model': str(tmp_path/'w2v')}))
    x = _speech(1.0)
    assert torch.allclose(embed_audio(x, enc, get_config('tiny')), embed_audio(x, e2, get_config('tiny')), atol=1e-5)

@pytest.mark.parametrize('seconds', [0.5, 3.0, 3.02, 4.99])
def test_shapes(enc, seconds):
    x = _speech(seconds)
    e = embed_audio(x, enc, get_config('tiny'))
    assert e.shape == (n_audio_frames(len(x)), 96) and e.dtype == torch.float32
    assert abs(len(e) - 50 * seconds) <= 1

def test_too_short(enc):
    with pytest.raises(ValueError, match='shorter than one Wav2Vec2 window'): embed_audio(np.zeros(100), enc, get_config('tiny'))

@pytest.mark.parametrize('chunk_s,overlap_s', [(2.0, 1.0), (3.0, 0.5), (1.5, 0.4)])
def test_chunked_equals_whole(enc, chunk_s, overlap_s):
    x = _speech(7.3, seed=1)
    whole = embed_audio(x, enc, get_config('tiny', **{'audio.chunk_s': 60}))
    ch = embed_audio(x, enc, get_config('tiny', **{'audio.chunk_s': chunk_s, 'audio.overlap_s': overlap_s}))
    rel = (ch - whole).norm(dim=1) / whole.norm(dim=1)
    assert ch.shape == whole.shape
    assert rel.median() < 0.02 and rel.max() < 0.12, (rel.median(), rel.max())
    # no seam: the frame-to-frame change at chunk borders is like that elsewhere
    assert (ch[1:] - ch[:-1]).norm(dim=1).max() < 1.5 * (whole[1:] - whole[:-1]).norm(dim=1).max()

def test_chunked_first_layer_is_exact_up_to_context(enc):
    "Layer 0 (transformer input) only sees the positional conv's context: chunk centres match the whole exactly."
    x = _speech(6.0, seed=2)
    c = lambda **k: get_config('tiny', **{'audio.hidden_layer': 0, **k})
    whole = embed_audio(x, enc, c(**{'audio.chunk_s': 60}))
    ch = embed_audio(x, enc, c(**{'audio.chunk_s': 2.0, 'audio.overlap_s': 1.0}))
    rel = (ch - whole).norm(dim=1) / whole.norm(dim=1)
    assert rel.median() < 1e-4

def test_embed_run_resumes_and_redoes_other_layers(tmp_path):
    run = make_synthetic_run(tmp_path/'run', n_clips=2, w_dim=8, seconds=(1.0, 1.5))
    cfg = get_config('tiny', device='cpu')
    assert embed_run(run, cfg, progress=False)['embedded'] == 2
    e, meta = load_embedding(run, 'clip000')
    ts, _ = load_tensors(run/'audio'/'clip000.safetensors')
    assert ts['e'].dtype == torch.float16 and e.shape == (n_audio_frames(meta['n_samples']), 96)
    assert meta['model'] == 'tiny' and meta['hidden_layer'] == -1
    assert embed_run(run, cfg, progress=False)['skipped'] == 2
    (run/'audio'/'clip001.safetensors').write_bytes(b'torn')                        # a damaged file is redone
    assert embed_run(run, cfg, progress=False) ['embedded'] == 1
    r = embed_run(run, get_config('tiny', device='cpu', **{'audio.hidden_layer': 0}), progress=False)
    assert r['embedded'] == 2

def test_embed_run_needs_clips(tmp_path):
    (tmp_path/'manifest.jsonl').write_text('{"clip": "a", "status": "kept"}\n')
    with pytest.raises(MissingStageOutputError, match='a2v crop'): embed_run(tmp_path, get_config('tiny'), progress=False)
