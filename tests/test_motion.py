"Tests of a2v.motion beyond the notebook: a reference video's motion against the sample data's truth, and a run's motion model."
import json, shutil
from pathlib import Path
import numpy as np, pytest, torch
from a2v.core import RunDir, append_jsonl, atomic_write_json, get_config, save_tensors, BadInputError, MissingStageOutputError, A2VWarning, load_tensors
from a2v import motion as mo

@pytest.fixture(scope='module')
def sample(tmp_path_factory):
    "Two sample clips (real faces, head roll and drift, blinks) with their truth."
    from a2v.sample_data import make_sample_data
    d = tmp_path_factory.mktemp('motion')/'data'
    make_sample_data(d, clips=2, seed=5, seconds=(5.0, 6.0), bad=False, progress=False, workers=1)
    return d

def _truth(sample, i): return json.loads((sample/'truth'/f'clip00{i}.json').read_text())

def test_reference_motion_follows_the_truth(sample):
    "The head roll and the blinks of a reference video (a sample clip) are read back: roll r > 0.7, every true blink found."
    for i in (0, 1):
        t = _truth(sample, i); n = t['n_frames']
        ref = mo.reference_motion(sample/t['video'], n, fps=t['fps'])
        assert ref['roll'].shape == (n,) and ref['shift'].shape == (n, 2) and ref['blink'].shape == (n,)
        assert np.corrcoef(ref['roll'], t['head_roll'])[0, 1] > 0.7
        from a2v.metrics import _runs
        for a, b in _runs(np.asarray(t['blink']) > 0.5):                    # each true blink: the track is high there
            assert ref['blink'][max(0, a - 2):b + 2].max() > 0.5, (i, a, b)
    longer = mo.reference_motion(sample/t['video'], 3 * n, fps=t['fps'])     # played forwards and backwards
    assert np.allclose(longer['roll'][:n], ref['roll']) and np.allclose(longer['roll'][n:2 * n - 2], ref['roll'][::-1][1:-1])

def test_reference_without_a_face_is_one_line(tmp_path):
    from a2v.media import write_video
    write_video(tmp_path/'blank.mp4', np.full((10, 64, 64, 3), 128, np.uint8), fps=25)
    with pytest.raises(BadInputError, match=r'blank\.mp4: no face found') as e: mo.reference_motion(tmp_path/'blank.mp4', 20)
    assert '\n' not in str(e.value)

def _crop_run(sample, run, G, d_true):
    "A run whose clips are fixed crops of the sample clips and whose 'inverted codes' carry the true lids along `d_true`."
    from a2v.media import read_video, write_video, save_wav
    from a2v.metrics import _fixed_crops
    rd = RunDir(run); ids = []
    g = torch.Generator().manual_seed(0)
    for i in (0, 1):
        t = _truth(sample, i); n = t['n_frames']
        frames = read_video(sample/t['video'], fps=t['fps']).frames[:n]
        crops, _ = _fixed_crops(frames, t['face_box'][:n], 64, k=1.4)
        cid = f'c{i}'; d = rd.clip_dir(cid); ids.append(cid)
        write_video(d/'frames.mp4', crops, fps=25, crf=0)
        save_wav(d/'audio.wav', np.zeros(n * 640, np.float32), 16000)
        atomic_write_json(d/'meta.json', dict(frames=n, fps=25.0, sample_rate=16000))
        append_jsonl(rd.manifest, dict(clip=cid, source='test', status='kept', reason=None, frames=n, fps=25.0))
        lids = torch.tensor(t['blink'][:n], dtype=torch.float32) * 0.25
        ws = G.mapping.w_avg.expand(n, G.num_ws, -1) + lids[:, None, None] * d_true + 0.002 * torch.randn(n, G.num_ws, G.w_dim, generator=g)
        save_tensors(rd.latents(cid), dict(ws=ws))
    atomic_write_json(run/'vae'/'split.json', dict(train=ids, val=[]))

def test_motion_model_of_a_run(sample, tmp_path):
    "fit_motion recovers the direction the codes' lids move along, measures the clips' rates; motion_model caches it and refits on change."
    from a2v.stylegan3 import load_generator
    G = load_generator('a2v-tiny-generator-v1').eval()
    d_true = torch.zeros(G.num_ws, G.w_dim); d_true[2:6] = torch.randn(4, G.w_dim, generator=torch.Generator().manual_seed(1))
    run = tmp_path/'run'; _crop_run(sample, run, G, d_true)
    cfg = get_config('tiny')
    with pytest.warns(A2VWarning, match='motion: no audio embeddings'): m = mo.motion_model(run, cfg, G=G)
    cos = torch.nn.functional.cosine_similarity(m.d_blink.flatten(), d_true.flatten(), 0)
    assert cos > 0.7, cos
    assert m.clips == 2 and m.blink_rate > 0 and np.isfinite(m.blink_gain) and m.blink_gain >= 0 and m.roll_std_deg > 0
    assert m.closure_w.numel() == 0 and m.closure_auc is None                 # no RUN/audio: no shut-lips probe (and it said so)
    assert (run/'motion'/'model.safetensors').exists()
    stamp = (run/'motion'/'model.safetensors').stat().st_mtime_ns
    assert mo.motion_model(run, cfg, G=G).blink_gain == m.blink_gain and (run/'motion'/'model.safetensors').stat().st_mtime_ns == stamp
    t, meta = load_tensors(RunDir(run).latents('c1'))
    save_tensors(RunDir(run).latents('c1'), dict(ws=t['ws'] * 1.0))            # re-made codes: the model is fitted again
    with pytest.warns(A2VWarning, match='motion: inputs changed'): mo.motion_model(run, cfg, G=G)
    (run/'vae'/'split.json').unlink()
    with pytest.raises(MissingStageOutputError, match='split.json'): mo.motion_model(run, cfg, G=G)

def test_renderer_without_face_mesh_or_split_still_renders_its_motion(monkeypatch, tmp_path):
    "No face mesh in the cache: a face's blink depth falls back to the model's, its shut lips to its own; a run with no VAE split: no motion model, said once."
    import warnings
    from a2v import render as R, metrics as M
    from a2v.core import MissingWeightsError
    def no_mesh(*a, **k): raise MissingWeightsError('face_landmark.tflite: missing')
    monkeypatch.setattr(M, 'FaceMesh', no_mesh)
    r = R.Renderer.__new__(R.Renderer); r.cfg, r.run, r.G = get_config('tiny'), tmp_path, None
    m = mo.MotionModel(torch.ones(2, 3), torch.ones(2, 3), torch.zeros(2), torch.zeros(2), blink_gain=1.5, closure_peak=.2,
                       blink_rate=15., roll_std_deg=.5, shift_std=.01, clips=1)
    assert r.blink_gain_for(torch.zeros(2, 3), m) == 1.5
    assert torch.equal(r.rest_code_for(torch.ones(2, 3), m), torch.ones(2, 3))     # ... and its rest is the photo's own code
    with pytest.warns(A2VWarning, match='render: no blinks or head motion'): assert r.motion_model() is None

def test_render_moves_the_face_from_its_rest(tmp_path):
    "With close_lips the speech's offsets start from the face at rest (every frame moved by rest − photo) and the pauses rest there; without, from the photo."
    from a2v import render as R
    r = R.Renderer.__new__(R.Renderer); r.cfg, r.run, r.G = get_config('tiny'), tmp_path, None
    r._motion = mo.MotionModel(torch.ones(2, 3), torch.ones(2, 3), torch.zeros(2), torch.zeros(2), blink_gain=1.5, closure_peak=.2,
                               blink_rate=15., roll_std_deg=.5, shift_std=.01, clips=1)              # no shut-lips probe
    rest = torch.full((2, 3), 0.5); r.rest_code_for = lambda w0, model: rest
    ws, w0, quiet = torch.randn(6, 2, 3), torch.zeros(2, 3), dict(still=True, steady_lids=False, steady_head=False)
    torch.testing.assert_close(r.animate(ws, w0, motion=quiet)[0], ws + rest)
    torch.testing.assert_close(r.animate(ws, w0, motion=dict(quiet, close_lips=False))[0], ws)
    wave = np.r_[np.zeros(8000), 0.3 * np.sin(np.arange(8000) / 3), np.zeros(8000)].astype(np.float32)  # 1.5 s: a pause, speech, a pause
    out, _, tracks = r.animate(torch.randn(37, 2, 3), w0, motion=quiet, wave=wave)
    assert tracks['shut'][:10].min() == 1 and tracks['shut'][15:20].max() == 0
    torch.testing.assert_close(out[:10], rest.expand(10, 2, 3))                                     # the pause rests

def test_roll_follow_predicts_the_roll_the_motion_causes(monkeypatch):
    "A face whose eye line turns 0.1 rad per unit of one code row, beside motion on another row that turns nothing: that roll, found."
    from a2v import render as R, metrics as M
    monkeypatch.setattr(R, 'synthesize_frames', lambda G, ws, bs=8, T=None: iter(ws[:, :, :1].numpy()[:, None]))   # a 'frame' is its code
    class Mesh:
        def track(self, img):                                       # img (S, 1, 2, 1): the eye line's angle from the first row
            a = 0.1 * img[:, 0, 0, 0] + 0.3; pts = np.zeros((len(img), 468, 3), np.float32)
            pts[:, M._EYE_OUTER[1], 0], pts[:, M._EYE_OUTER[1], 1] = np.cos(a), np.sin(a)
            return pts, np.ones(len(img), np.float32)
    g = torch.Generator().manual_seed(0)
    ws = torch.zeros(60, 2, 3); ws[:, 0, 0] = torch.linspace(-1, 2, 60); ws[:, 1, 0] = torch.randn(60, generator=g)
    test = mo.roll_follow(None, ws, torch.zeros(2, 3), Mesh())
    np.testing.assert_allclose(test, 0.1 * ws[:, 0, 0].numpy(), atol=1e-4)       # the photo's own 0.3 rad is not undone
    still = mo.roll_follow(None, torch.zeros(60, 2, 3), torch.zeros(2, 3), Mesh())
    assert np.abs(still).max() == 0                                               # no motion: nothing to undo

def test_shut_lips_probe_hears_when_the_lips_close(sample):
    """The probe fitted on one sample clip's audio and mesh-labelled frames tells shut from open lips on the other (AUC > 0.7),
    and its labels agree with the clip's true mouth opening."""
    from a2v.media import read_video, load_audio
    from a2v.metrics import _fixed_crops, FaceMesh, mesh_motion
    from a2v.audio import load_audio_encoder, embed_audio
    cfg = get_config('tiny'); enc = load_audio_encoder(cfg); fm = FaceMesh(); feats, labels = [], []
    for i in (0, 1):
        t = _truth(sample, i); n = t['n_frames']
        crops, _ = _fixed_crops(read_video(sample/t['video'], fps=t['fps']).frames[:n], t['face_box'][:n], 64, k=1.4)
        gap = mesh_motion(crops, fm, 25.0)['gap']; lab = mo.closure_labels(gap)
        assert np.mean(np.asarray(t['mouth_opening'])[:n][lab > 0]) < np.mean(np.asarray(t['mouth_opening'])[:n][lab == 0])
        feats.append(mo.frame_features(embed_audio(load_audio(sample/t['video'], 16000), enc, cfg), n)); labels.append(lab)
    probe = mo.fit_closure(feats[:1], labels[:1])
    auc = mo._auc(mo.closure_prob(feats[1], probe), labels[1])
    assert auc > 0.7, auc
