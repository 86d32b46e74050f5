"Tests of a2v.embed2lat: the frame-count rule, pooling, padding masks, shapes, the stage (resume, determinism), lip sync."
import json, shutil
from pathlib import Path
import numpy as np, pytest, torch
from a2v.core import get_config, RunDir, MissingStageOutputError, BadInputError
from a2v.audio import n_audio_frames, embed_run, load_embedding
from a2v.vae import make_synthetic_run, train_vae, load_mu
from a2v.embed2lat import (n_video_frames, pool_matrix, Embed2Lat, embed2lat_config, collate, embed2lat_loss,
                           PairDataset, train_embed2lat, load_embed2lat, predict_latents, lipsync_report)

torch.set_num_threads(1)

@pytest.mark.parametrize('seconds,frames', [(3.00, 75), (3.02, 76), (4.99, 125), (3.06, 77), (10.0, 250), (0.02, 1)])
def test_frame_count_rule(seconds, frames):
    assert n_video_frames(seconds) == frames
    assert n_video_frames(n_samples=round(seconds * 16000)) == frames
    assert n_video_frames(n_samples=frames * 640) == frames          # a2v crop cuts audio to F · 640 samples

def test_frame_count_rule_matches_pooling():
    m = Embed2Lat(**embed2lat_config(get_config('tiny').embed2lat, 96, 16)).eval()
    for s in (3.00, 3.02, 4.99):
        n = round(s * 16000)
        out = m(torch.randn(1, n_audio_frames(n), 96), n_video_frames(n_samples=n))
        assert out.shape == (1, n_video_frames(s), 16)

def test_pool_matrix_equals_adaptive_avg_pool():
    g = torch.Generator().manual_seed(0)
    for T, F in [(149, 75), (150, 76), (249, 125), (7, 7), (5, 9)]:
        h = torch.randn(1, T, 4, generator=g)
        P = pool_matrix(torch.tensor([T]), torch.tensor([F]), T + 3, F + 2)
        ref = torch.nn.AdaptiveAvgPool1d(F)(h[0].T).T
        assert torch.allclose((P @ torch.cat([h, torch.zeros(1, 3, 4)], 1))[0, :F], ref, atol=1e-6)

def test_paper_shapes():
    c = get_config('paper').embed2lat
    m = Embed2Lat(**embed2lat_config(c, 768, 96)).eval()
    assert len(m.transformer.layers) == 12 and m.head.out_features == 96
    assert m.transformer.pos_conv_embed.conv.kernel_size == (128,)
    with torch.no_grad(): out = m(torch.randn(1, 149, 768), 75)
    assert out.shape == (1, 75, 96)

def test_padding_mask_batch_equals_single():
    torch.manual_seed(0)
    m = Embed2Lat(in_dim=8, hidden_size=16, num_layers=2, num_heads=2, intermediate_size=32, conv_pos=8,
                  conv_pos_groups=2, dropout=0.0, latent_dim=3).eval()
    items = [(torch.randn(50, 8), torch.randn(25, 3)), (torch.randn(31, 8), torch.randn(16, 3))]
    b = collate(items)
    out = m(b['e'], b['n_frames'], b['lengths'])
    for i, (e, mu) in enumerate(items):
        assert torch.allclose(out[i, :len(mu)], m(e[None], len(mu))[0], atol=1e-5)
    loss, _ = embed2lat_loss(m, b)
    ref = torch.cat([((m(e[None], len(mu))[0] - mu) ** 2).mean(-1) for e, mu in items]).mean()
    assert torch.allclose(loss, ref, atol=1e-5)                                  # padded frames are not counted

def _cfg(**kw):
    return get_config('tiny', device='cpu', **{'vae.epochs': 30, 'vae.batch_size': 128, 'vae.val_fraction': 0.25,
                                               'vae.layers': [5, 6, 7], 'vae.schedule': 'constant',   # the paper's VAE: the
                                               # synthetic run puts its motion on layers 5-7, as the paper's codes have it
                                               'embed2lat.epochs': 4, 'embed2lat.batch_size': 4, **kw})

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    d = make_synthetic_run(tmp_path_factory.mktemp('e2l')/'run', n_clips=8, w_dim=16, seconds=(2.0, 3.0), seed=1)
    train_vae(d, _cfg(), progress=False); embed_run(d, _cfg(), progress=False)
    return d

def test_pairs_agree_on_frames(run):
    ds = PairDataset(run, RunDir(run).clip_ids(), max_seconds=1.0)
    for (e, mu), c in zip(ds.items, ds.clip_ids):
        assert len(mu) == n_video_frames(n_samples=load_embedding(run, c)[1]['n_samples'])
    e, mu = ds[0]
    assert len(mu) == 25 and abs(len(e) - 50) <= 1

def test_mismatched_mu_is_reported(run, tmp_path):
    d = tmp_path/'r'; shutil.copytree(run, d)
    from a2v.core import save_tensors
    save_tensors(d/'vae'/'mu'/'clip000.safetensors', {'mu': torch.zeros(3, 16)})
    with pytest.raises(BadInputError, match='μ\\* has 3'): PairDataset(d, ['clip000'])

def test_stage_resume_determinism_and_prediction(run, tmp_path):
    a, b = tmp_path/'a', tmp_path/'b'
    shutil.copytree(run, a); shutil.copytree(run, b)
    const = {'embed2lat.schedule': 'constant'}    # a run stopped at 2 epochs is one killed there only when the rate ignores the epoch count
    ma = train_embed2lat(a, _cfg(**const), progress=False)
    train_embed2lat(b, _cfg(**const, **{'embed2lat.epochs': 2}), progress=False)   # "killed" after 2 epochs ...
    mb = train_embed2lat(b, _cfg(**const), progress=False)                         # ... and resumed
    ha = json.loads((a/'embed2lat'/'history.json').read_text()); hb = json.loads((b/'embed2lat'/'history.json').read_text())
    assert [h['val_loss'] for h in ha] == [h['val_loss'] for h in hb]
    assert ma['val_mse'] == mb['val_mse'] and ma['paper_val_mse'] == 0.273
    assert train_embed2lat(a, _cfg(**const), progress=False) == ma          # finished: nothing redone
    model, meta = load_embed2lat(a)
    e, em = load_embedding(a, 'clip003')
    mu = predict_latents(e, model, n_video_frames(n_samples=em['n_samples']))
    assert mu.shape == load_mu(a, 'clip003').shape
    assert predict_latents(e, model).shape == mu.shape
    assert (a/'embed2lat'/'curves.png').exists() and (a/'embed2lat'/'model.json').exists()

def test_stage_follows_the_configured_schedule(run, tmp_path):
    "The tiny preset trains Embed2Lat with a cosine schedule: each epoch's rate, in the history, falls from lr towards 0."
    d = tmp_path/'r'; shutil.copytree(run, d)
    cfg = _cfg()
    assert cfg.embed2lat.schedule == 'cosine'
    train_embed2lat(d, cfg, progress=False)
    lrs = [h['lr'] for h in json.loads((d/'embed2lat'/'history.json').read_text())]
    assert lrs[0] == cfg.embed2lat.lr and all(a > b for a, b in zip(lrs, lrs[1:])) and lrs[-1] < 0.2 * cfg.embed2lat.lr
    shutil.rmtree(d/'embed2lat'); train_embed2lat(d, _cfg(**{'embed2lat.schedule': 'constant'}), progress=False)
    assert {h['lr'] for h in json.loads((d/'embed2lat'/'history.json').read_text())} == {cfg.embed2lat.lr}

def test_needs_audio(run, tmp_path):
    d = tmp_path/'r'; shutil.copytree(run, d); shutil.rmtree(d/'audio')
    with pytest.raises(MissingStageOutputError, match='a2v embed-audio'): train_embed2lat(d, _cfg(), progress=False)

@pytest.mark.slow
def test_learns_loudness_driven_motion(run, tmp_path):
    "On the synthetic run (Δw driven by the audio's loudness) μ' follows the mouth; the best epoch beats the mean predictor."
    d = tmp_path/'r'; shutil.copytree(run, d)
    m = train_embed2lat(d, _cfg(**{'embed2lat.epochs': 15, 'embed2lat.keep': 'best'}), progress=False)
    assert m['val_mse'] < m['val_mse_mean_predictor']
    rep = lipsync_report(d)
    assert rep['r_pred_pc1'] > 0.5 or rep['r_pred_best_dim'] > 0.5, rep
    assert rep['r_pred_readout'] > 0.5 and rep['r_true_readout'] > rep['r_pred_readout'] - 0.1, rep   # the readout, near μ*'s

def test_trains_on_the_configured_threads(run, tmp_path, monkeypatch):
    "embed2lat.threads reaches the training loop (the tiny preset: 1) and torch's own setting is back afterwards."
    import torch, a2v.embed2lat as E
    seen, real = [], E.fit
    def spy(*a, **k):
        seen.append(k.get('threads'))
        return real(*a, **k)
    monkeypatch.setattr(E, 'fit', spy)
    d = tmp_path/'r'; shutil.copytree(run, d)
    before = torch.get_num_threads()
    train_embed2lat(d, _cfg(**{'embed2lat.epochs': 1, 'embed2lat.threads': 1}), progress=False)
    assert seen == [1] and torch.get_num_threads() == before
    assert get_config('tiny').embed2lat.threads == 1 and get_config('paper').embed2lat.threads == 0

def test_ensemble_averages_members_trained_apart():
    "μ' of an ensemble is its members' mean; each member's gradient comes from its own error alone (they train apart)."
    from a2v.embed2lat import Embed2LatEnsemble
    torch.manual_seed(0)
    kw = dict(in_dim=8, hidden_size=16, num_layers=1, num_heads=2, intermediate_size=32, conv_pos=8, conv_pos_groups=2,
              dropout=0.0, latent_dim=3)
    ens = Embed2LatEnsemble(3, **kw)
    a, b = (list(m.parameters()) for m in ens.members[:2])
    assert not torch.equal(a[-2], b[-2])                                       # different initial weights
    b = collate([(torch.randn(50, 8), torch.randn(25, 3)), (torch.randn(31, 8), torch.randn(16, 3))])
    each = ens(b['e'], b['n_frames'], b['lengths'], each=True)                 # (3, B, F, 3)
    assert each.shape[0] == 3 and torch.allclose(ens(b['e'], b['n_frames'], b['lengths']), each.mean(0))
    loss, parts = embed2lat_loss(ens, b)
    own = [embed2lat_loss(m, b)[0] for m in ens.members]
    assert torch.allclose(loss, torch.stack(own).mean())                       # trained on their mean MSE ...
    mean_only = Embed2Lat(**kw); mean_only.forward = lambda *x: each.mean(0)
    assert torch.allclose(parts['mse'], embed2lat_loss(mean_only, b)[0])       # ... reported as the MSE of μ'
    loss.backward()
    g = [p.grad.clone() for p in ens.members[1].parameters()]
    ens.zero_grad(); (own[1] / 3).backward()
    assert all(torch.allclose(x, p.grad, atol=1e-7) for x, p in zip(g, ens.members[1].parameters()))
    with pytest.raises(ValueError, match='members'): Embed2LatEnsemble(0, **kw)

def test_stage_trains_and_loads_an_ensemble(run, tmp_path):
    "embed2lat.members = 2: one file holds both, load_embed2lat averages them, and a killed run resumes to the same models."
    from a2v.core import A2VError
    a, b = tmp_path/'a', tmp_path/'b'
    shutil.copytree(run, a); shutil.copytree(run, b)
    two = {'embed2lat.members': 2, 'embed2lat.schedule': 'constant'}
    ma = train_embed2lat(a, _cfg(**two), progress=False)
    train_embed2lat(b, _cfg(**two, **{'embed2lat.epochs': 1}), progress=False)  # "killed" after 1 epoch ...
    mb = train_embed2lat(b, _cfg(**two), progress=False)                         # ... and resumed
    assert ma['val_mse'] == mb['val_mse'] and ma['embed2lat']['members'] == 2
    model, meta = load_embed2lat(a)
    assert len(model.members) == 2 and meta['config']['members'] == 2
    e, em = load_embedding(a, 'clip003'); F = n_video_frames(n_samples=em['n_samples'])
    each = [predict_latents(e, m, F) for m in model.members]
    assert not torch.allclose(each[0], each[1])
    assert torch.allclose(predict_latents(e, model, F), (each[0] + each[1]) / 2, atol=1e-6)
    with pytest.raises(A2VError, match='embed2lat.members'): get_config('tiny', **{'embed2lat.members': 0})
