"Tests of LSE-C / LSE-D in a2v.syncnet (SyncNet with random weights: no download): MFCC, shapes, offset search, scores, loading."
import os, pickle
import numpy as np, pytest, torch
from a2v.core import MissingWeightsError, UnsafePickleError
from a2v.syncnet import (mfcc, syncnet, load_syncnet, syncnet_faces, sync_embeddings, sync_distances, sync_scores,
                         lse, lse_report)
from a2v.metrics import render_metrics
from a2v.weights import REGISTRY

torch.set_num_threads(1)

@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0); return syncnet()

class _Shared(torch.nn.Module):
    "Stand-in tower: the standardised level of each of a window's 5 frames (mean brightness, or mean c0 = log energy)."
    def __init__(self, audio): super().__init__(); self.audio = audio
    def forward(self, x):
        s = x[:, 0, 0].reshape(len(x), 5, 4).mean(2) if self.audio else x.mean((1, 3, 4))   # (b, 5)
        return (s - s.mean(1, keepdim=True)) / (s.std(1, keepdim=True) + 1e-3)

TOY = torch.nn.ModuleDict(dict(netcnnaud=_Shared(True), netfcaud=torch.nn.Identity(),
                               netfclip=torch.nn.Identity(), netcnnlip=_Shared(False)))

def _onoff(k, F=60, seed=0, size=48):
    "Frames showing a random on/off sequence k frames late (k < 0: early), audio whose loudness follows it on time."
    rng = np.random.default_rng(seed); s = (rng.random(F + 40) > .5).astype(float)
    frames = np.stack([np.full((size, size, 3), 40 + 160 * s[20 + t - k], np.uint8) for t in range(F)])
    audio = np.repeat(.02 + .5 * s[20:20 + F], 640) * rng.standard_normal(640 * F)
    return frames, audio.astype(np.float32)

def test_mfcc_rows_and_energy():
    x = np.random.default_rng(0).standard_normal(8000) * .1
    c = mfcc(x)
    assert c.shape == (49, 13) and c.dtype == np.float32                  # 1 + ceil((8000 − 400) / 160)
    pe = np.append(x[:1], x[1:] - .97 * x[:-1]) * 32768
    assert c[3, 0] == pytest.approx(np.log((np.abs(np.fft.rfft(pe[480:880], 512)) ** 2).sum() / 512), rel=1e-5)
    assert np.allclose(mfcc(x * 4)[:, 1:], c[:, 1:], atol=1e-3) and np.allclose(mfcc(x * 4)[:, 0], c[:, 0] + 2 * np.log(4), atol=1e-3)

def test_shapes_with_random_weights(net):
    assert sum(p.numel() for p in net.parameters()) == 13_631_616
    faces = syncnet_faces(np.random.default_rng(0).integers(0, 255, (8, 64, 64, 3), dtype=np.uint8))
    assert faces.shape == (8, 3, 224, 224) and faces.dtype == np.uint8
    v, a = sync_embeddings(net, faces, mfcc(np.zeros(8 * 640)), n_windows=3, batch_size=2)
    assert v.shape == a.shape == (3, 1024)
    with pytest.raises(ValueError, match='4 windows need 8 frames'): sync_embeddings(net, faces[:7], mfcc(np.zeros(8 * 640)), 4)
    r = lse(*_onoff(0, F=10), weights=net)
    assert r['windows'] == 5 and len(r['mean_dist']) == 31 and -15 <= r['offset'] <= 15 and r['lse_c'] >= 0
    with pytest.raises(ValueError, match='at least 6 frames'): lse(*_onoff(0, F=5), weights=net)

@pytest.mark.parametrize('k', [-4, 0, 2, 5])
def test_offset_found_when_the_towers_share_a_signal(k):
    r = lse(*_onoff(k, seed=k + 10), weights=TOY)
    assert r['offset'] == k and r['lse_c'] > 1 and r['lse_d'] < .8, r

def test_offset_survives_resampling():
    frames, audio = _onoff(3, seed=7)
    import soxr
    r = lse(frames, soxr.resample(audio, 16000, 22050), weights=TOY, sr=22050)
    assert r['offset'] == 3

def test_scores_on_hand_made_tables():
    s = sync_scores(np.array([[4., 1., 7.], [5., 2., 6.], [3., 3., 5.]]))     # mean over windows (4, 2, 6)
    assert (s['lse_d'], s['lse_c'], s['offset']) == (2., 2., 0)
    s = sync_scores(np.array([[9., 8., 7., 3., 9.], [9., 8., 7., 1., 9.]]))   # means (9, 8, 7, 2, 9): min at column 3
    assert (s['lse_d'], s['lse_c'], s['offset']) == (2., 6., -1)             # median 8 − 2; vshift 2 − 3
    s = sync_scores(np.array([[1., 4., 4.], [4., 1., 4.], [4., 4., 1.]]))     # per-window minima average 1, the means 3
    assert (s['lse_d'], s['lse_c']) == (3., 0.)
    with pytest.raises(ValueError, match='2·vshift'): sync_scores(np.zeros((2, 4)))

def test_distances_pair_window_i_with_audio_i_plus_offset():
    v = np.random.default_rng(1).normal(size=(7, 5))
    d = sync_distances(v, np.r_[v[2:], np.zeros((2, 5))], vshift=3)         # audio window i holds video window i + 2
    assert d.shape == (7, 7) and np.allclose(d[2:, 1], 0) and sync_scores(d)['offset'] == 2
    with pytest.raises(ValueError, match='equally shaped'): sync_distances(v, v[:3])

def test_load_round_trip_refuses_code_and_names_the_fetch(net, tmp_path, monkeypatch):
    torch.save(net.state_dict(), tmp_path/'sn.model')
    back = load_syncnet(tmp_path/'sn.model')
    x = torch.randn(3, 1, 13, 20)
    with torch.no_grad(): assert torch.allclose(back['netcnnaud'](x), net['netcnnaud'](x))
    class Evil:
        def __reduce__(self): return (os.system, ('echo pwned',))
    (tmp_path/'evil.model').write_bytes(pickle.dumps({'netfcaud.3.weight': Evil()}, protocol=2))
    with pytest.raises(UnsafePickleError, match='refusing to unpickle'): load_syncnet(tmp_path/'evil.model')
    monkeypatch.setenv('A2V_CACHE', str(tmp_path/'cache'))
    with pytest.raises(MissingWeightsError, match='a2v weights fetch syncnet'): load_syncnet('syncnet')
    e = REGISTRY['syncnet']
    assert e.url.endswith('/syncnet_v2.model') and 'MIT' in e.licence and e.path == tmp_path/'cache'/'syncnet'/'syncnet_v2.model'

def test_render_metrics_reports_lse_only_with_weights(net, tmp_path, monkeypatch):
    monkeypatch.setenv('A2V_CACHE', str(tmp_path))
    frames, audio = _onoff(0, F=12, size=64)
    m = render_metrics(frames, audio)
    assert list(m['lse']) == ['missing'] and 'a2v weights fetch syncnet' in m['lse']['missing']
    (tmp_path/'syncnet').mkdir(); torch.save(net.state_dict(), tmp_path/'syncnet'/'syncnet_v2.model')
    m = render_metrics(frames, audio)
    assert set(m['lse']) == {'lse_c', 'lse_d', 'offset', 'windows'} and m['lse']['windows'] == 7
    assert 'lse' not in render_metrics(frames, audio, syncnet=None)
    assert lse_report(frames, audio, weights=TOY)['offset'] == 0
