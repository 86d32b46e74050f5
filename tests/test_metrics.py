"Tests of a2v.metrics: each asserts behaviour that a wrong implementation would fail."
import json, math
import numpy as np
import pytest
from a2v.core import psnr
from a2v.metrics import (mse, lpips_distance, reconstruction_metrics, loudness_envelope, mouth_opening,
                         mouth_region, default_face_box, background_flicker, lipsync, render_metrics, lipsync_plot,
                         _toy_clip)

SR, FPS = 16000, 25.0


@pytest.fixture(scope='module')
def opening():
    "A smooth, random mouth-opening sequence in [0, 1] (40 frames)."
    x = np.random.default_rng(7).random(44)
    return np.clip(np.convolve(x, np.ones(5) / 5, 'valid') * 1.8 - 0.5, 0, 1)


@pytest.fixture(scope='module')
def clip128(opening): return _toy_clip(opening, 128, seed=1)


# --- reconstruction -------------------------------------------------------------------------------------------
def test_psnr_identical_is_inf():
    a = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    assert psnr(mse(a, a)) == math.inf and mse(a, a) == 0


def test_psnr_known_value():
    a = np.zeros((4, 10, 10, 3), np.uint8)
    b = a.copy(); b[..., 0] = 51                              # one channel off by 51 = 0.2 of the range
    assert mse(a, b) == pytest.approx(0.2 ** 2 / 3)
    assert psnr(mse(a, b)) == pytest.approx(10 * math.log10(3 / 0.04))
    assert psnr(mse(a, b, data_range=1.)) == pytest.approx(10 * math.log10(3 / 51 ** 2))


def test_psnr_not_fooled_by_uint8_wraparound():
    a = np.full((8, 8, 3), 250, np.uint8); b = np.full((8, 8, 3), 5, np.uint8)
    assert psnr(mse(a, b)) == pytest.approx(-20 * math.log10(245 / 255))


def test_lpips_orders_by_distortion():
    rng = np.random.default_rng(0)
    x = _toy_clip(np.zeros(1), 64, noise=0)                   # (1, 64, 64, 3) a real face
    n1 = np.clip(x + rng.normal(0, 8, x.shape), 0, 255).astype(np.uint8)
    n2 = np.clip(x + rng.normal(0, 40, x.shape), 0, 255).astype(np.uint8)
    from a2v.metrics import _lpips_model
    lp, real = _lpips_model('alex')
    d = lpips_distance(np.concatenate([x, n1, n2]), np.concatenate([x, x, x]), model=lp)
    assert d.shape == (3,) and d[0] == pytest.approx(0, abs=1e-6) and d[0] < d[1] < d[2]
    r = reconstruction_metrics(np.concatenate([x, n1]), np.concatenate([x, x]), model=lp)
    assert r['psnr_per_frame'][0] == math.inf and 20 < r['psnr_per_frame'][1] < 40
    assert r['lpips'] == pytest.approx(d[:2].mean(), rel=1e-4)


# --- loudness -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('start,stop', [(0.4, 0.8), (0.0, 0.2), (1.0, 1.52)])
def test_envelope_of_tone_burst_starts_and_ends_on_the_right_frames(start, stop):
    t = np.arange(int(1.6 * SR)) / SR
    x = (0.25 * np.sin(2 * np.pi * 500 * t) * ((t >= start) & (t < stop))).astype(np.float32)
    env = loudness_envelope(x)
    assert len(env) == 40
    loud = np.nonzero(env > -59)[0]
    assert loud[0] == round(start * FPS) and loud[-1] == math.ceil(stop * FPS) - 1
    assert env[loud[0] + 1] == pytest.approx(20 * math.log10(0.25 / math.sqrt(2)), abs=0.05)
    lin = loudness_envelope(x, db=False)
    assert lin[loud[0] + 1] == pytest.approx(0.25 / math.sqrt(2), rel=1e-2) and lin[0 if start else -1] == 0


def test_envelope_length_and_padding():
    x = np.ones(SR // 2 + 10, np.float32) * 0.1              # 0.5 s + 10 samples → 13 frames (last one partial)
    assert len(loudness_envelope(x)) == 13
    env = loudness_envelope(x, n_frames=20)
    assert len(env) == 20 and (env[13:] == -60).all() and env[12] == pytest.approx(-20, abs=1e-3)


# --- mouth opening --------------------------------------------------------------------------------------------
@pytest.mark.parametrize('size', [64, 128, 256])
def test_mouth_opening_recovers_known_sequence(opening, size):
    clip = _toy_clip(opening, size, seed=size)
    reg = mouth_region(clip)
    assert reg['source'] == 'mtcnn'
    m = mouth_opening(clip, region=reg)
    assert m.shape == (len(opening),)
    assert np.corrcoef(m, opening)[0, 1] > 0.9


def test_mouth_opening_is_scale_free(opening):
    a = mouth_opening(_toy_clip(opening, 64, seed=1)); b = mouth_opening(_toy_clip(opening, 256, seed=1))
    assert np.abs(a - b).mean() < 0.25 * np.ptp(b)            # same units (mouth widths) at any resolution


def test_mouth_opening_fallback_box(clip128, opening):
    reg = mouth_region(clip128, detect=False)
    assert reg['source'] == 'default_box'
    assert np.corrcoef(mouth_opening(clip128, region=reg), opening)[0, 1] > 0.8


def test_mouth_opening_ignores_global_brightness(clip128, opening):
    gain = np.linspace(0.7, 1.0, len(clip128))[:, None, None, None]   # the lights fade in
    dim = (clip128 * gain).astype(np.uint8)
    reg = mouth_region(clip128)
    assert np.corrcoef(mouth_opening(dim, region=reg), opening)[0, 1] > 0.9


def test_soft_measure_reads_faint_mouths(clip128, opening):
    "A generated mouth is a grey shadow, not a black gap: the soft measure still follows it, the band measure less so."
    closed = _toy_clip(np.zeros_like(opening), 128, seed=1).astype(np.float32)
    faint = (0.1 * clip128 + 0.9 * closed).round().astype(np.uint8)    # 10 % of the gap's darkness is left
    reg = mouth_region(clip128)
    soft, band = mouth_opening(faint, region=reg), mouth_opening(faint, region=reg, method='band')
    r_soft, r_band = np.corrcoef(soft, opening)[0, 1], np.corrcoef(band, opening)[0, 1]
    assert r_soft > 0.95 and r_band < r_soft - 0.2, (r_soft, r_band)
    with pytest.raises(ValueError, match='method'): mouth_opening(faint, region=reg, method='sharp')


def test_mouth_opening_no_face_does_not_crash():
    noise = np.random.default_rng(0).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    assert mouth_region(noise)['source'] == 'default_box'
    assert mouth_opening(noise).shape == (5,)


# --- flicker --------------------------------------------------------------------------------------------------
def test_flicker_static_noise_and_face_change(clip128, opening):
    box = default_face_box(128, 128)
    still = np.repeat(clip128[:1], 10, 0)
    assert background_flicker(still, box) == 0 and background_flicker(still, box, 'inside') == 0
    rng = np.random.default_rng(0)
    vals = [background_flicker(np.clip(still + rng.normal(0, s, still.shape), 0, 255).astype(np.uint8), box)
            for s in (1, 3, 9)]
    assert vals[0] < vals[1] < vals[2]
    talking = _toy_clip(opening[:10], 128, noise=0)         # only the mouth (inside the box) changes
    assert background_flicker(talking, box) == 0 and background_flicker(talking, box, 'inside') > 0


def test_flicker_value_in_grey_levels():
    f = np.zeros((3, 10, 10, 3), np.uint8); f[1] = 10        # background goes 0 → 10 → 0
    assert background_flicker(f, (0, 0, 5, 5)) == pytest.approx(10)


# --- lip sync -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('lag', [3, -2, 0])
def test_lipsync_finds_injected_lag(lag):
    rng = np.random.default_rng(1)
    env = np.convolve(rng.random(160) > .6, np.hanning(5), 'same') * 30 - 60  # (160,) syllables
    mouth = np.roll(env, lag) + rng.normal(0, 2, 160)                          # lag > 0: video late
    s = lipsync(mouth, env)
    assert s['best_lag'] == lag and s['r_best'] > 0.8
    if lag: assert s['r'] < s['r_best'] - 0.2


def test_lipsync_constant_signal_is_nan_and_render_metrics_is_strict_json(clip128, opening):
    assert math.isnan(lipsync(np.zeros(30), np.arange(30.))['r'])
    audio = np.zeros(len(clip128) * 640, np.float32)          # silence: constant envelope, r undefined
    m = render_metrics(clip128, audio, truth_opening=opening)
    json.dumps(m, allow_nan=False)
    assert m['lipsync']['r'] is None and m['truth']['r_mouth_vs_truth'] > 0.9
    assert len(m['mouth_opening']) == len(m['loudness_db']) == len(clip128)
    assert m['mesh']['lipsync']['r'] is None and m['truth']['r_mesh_vs_truth'] > 0.85     # the face mesh's view too
    assert len(m['mesh']['opening']) == len(m['mesh']['face_score']) == len(clip128) and m['mesh']['face_score_min'] > 0.9
    assert 'mesh' not in render_metrics(clip128[:3], audio[:3 * 640], mesh=None)


def test_render_metrics_end_to_end(opening, tmp_path):
    rng = np.random.default_rng(3)
    F = len(opening)
    audio = np.concatenate([o * 0.3 * rng.standard_normal(640) for o in opening]).astype(np.float32)
    clip = _toy_clip(np.roll(opening, 2), 96, seed=2)         # video 2 frames late
    m = render_metrics(clip, audio, ref_frames=clip)
    assert m['n_frames'] == F and m['face_box_source'] == 'mtcnn'
    assert m['lipsync']['best_lag'] == 2 and m['lipsync']['r_best'] > 0.7  # dB envelope vs linear opening
    assert m['mesh']['lipsync']['best_lag'] == 2                             # the face mesh sees the same delay
    assert m['reconstruction']['psnr'] is None and m['reconstruction']['mse'] == 0
    assert m['flicker_background'] < m['flicker_face']
    fig = lipsync_plot(m['mouth_opening'], m['loudness_db'], path=tmp_path / 'lipsync.png')
    assert (tmp_path / 'lipsync.png').stat().st_size > 1000


def test_bad_inputs():
    with pytest.raises(ValueError, match='equal shapes'): mse(np.zeros((2, 2)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match='mono'): loudness_envelope(np.zeros((100, 2)))
    with pytest.raises(ValueError, match='uint8 frames'): render_metrics(np.zeros((3, 8, 8, 3)), np.zeros(100))
    with pytest.raises(ValueError, match='region'): background_flicker(np.zeros((2, 4, 4, 3)), (0, 0, 1, 1), 'sky')


# --- the independent measure: MediaPipe's face mesh ----------------------------------------------------------
def test_face_mesh_follows_the_drawn_mouth_at_64px(opening):
    from a2v.metrics import FaceMesh, mesh_opening
    clip = _toy_clip(opening, 64, seed=2)
    m = mesh_opening(clip, FaceMesh(threads=1))
    assert m['opening'].shape == m['face_score'].shape == (len(clip),)
    assert np.corrcoef(m['opening'], opening)[0, 1] > 0.85 and m['face_score'].min() > 0.9


def test_face_mesh_bad_model_and_missing_pieces(tmp_path, monkeypatch):
    import sys
    from a2v.core import BadInputError, MissingWeightsError
    from a2v.metrics import FaceMesh
    from a2v.metrics import face_mesh_or_why
    bad = tmp_path/'model.tflite'; bad.write_text('not a model')
    with pytest.raises(BadInputError, match='model.tflite: not a face landmark model') as e: FaceMesh(bad)
    assert '\n' not in str(e.value)
    monkeypatch.setitem(sys.modules, 'ai_edge_litert.interpreter', None)           # the package is not installed
    with pytest.raises(MissingWeightsError, match='pip install ai-edge-litert'): FaceMesh()
    monkeypatch.delitem(sys.modules, 'ai_edge_litert.interpreter')
    monkeypatch.setenv('A2V_CACHE', str(tmp_path/'empty')); monkeypatch.setenv('A2V_OFFLINE', '1')
    with pytest.raises(MissingWeightsError, match='face_landmark.tflite: missing'): FaceMesh()
    mesh, why = face_mesh_or_why()                                    # reports go on without it, and say why
    assert mesh is None and 'a2v weights fetch face-mesh' in why and not (tmp_path/'empty').exists()


@pytest.mark.slow
def test_mouth_opening_on_sample_data(tmp_path):
    "Against the ground truth of the self-made sample clips (real faces, espeak-ng-driven mouths, head motion)."
    from a2v.sample_data import make_sample_data
    from a2v.metrics import mouth_validation
    make_sample_data(tmp_path, clips=2, seed=3, seconds=(3.0, 3.5), bad=False, progress=False, workers=1)
    rows = mouth_validation(tmp_path, sizes=(64,))
    assert len(rows) == 2 and all(r['region'] == 'mtcnn' for r in rows)
    assert min(r['r_truth'] for r in rows) > 0.85, rows
    assert min(r['r_truth_mesh'] for r in rows) > 0.85, rows    # the independent measure (MediaPipe's face mesh) agrees


def test_short_clips(clip128):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter('error')                          # no numpy warnings from empty slices
        s = lipsync(np.arange(5.), np.arange(5.), max_lag=10)
        assert s['r'] == pytest.approx(1) and s['best_lag'] == 0 and math.isnan(s['r_per_lag'][0])
        m = render_metrics(clip128[:1], np.zeros(640, np.float32))
    assert m['n_frames'] == 1 and m['flicker_background'] == 0 and m['lipsync']['r'] is None
    with pytest.raises(ValueError, match='at least one frame'): render_metrics(clip128[:0], np.zeros(10, np.float32))


def test_motion_measures_on_sample_data_and_bad_truth(tmp_path):
    "The mesh's roll, position and inner-lip gap follow the sample data's truth on fresh clips; a truth without head_roll is one line."
    from a2v.sample_data import make_sample_data
    from a2v.metrics import motion_validation, motion_verdict
    from a2v.core import BadInputError
    make_sample_data(tmp_path, clips=2, seed=4, seconds=(3.0, 3.5), bad=False, progress=False, workers=1)
    rows = motion_validation(tmp_path, sizes=(128,))
    v = motion_verdict(rows)[128]
    assert len(rows) == 2 and all(v[k]['sees'] for k in ('r_roll', 'r_shift', 'r_gap')), v
    assert all(r['closure_truth'] is not None and r['rest'] is not None for r in rows)
    t = tmp_path/'truth'/'clip000.json'; d = json.loads(t.read_text()); d.pop('head_roll'); t.write_text(json.dumps(d))
    with pytest.raises(BadInputError, match=r'clip000\.json: no head_roll') as e: motion_validation(tmp_path, sizes=(64,))
    assert '\n' not in str(e.value)
    with pytest.raises(BadInputError, match='no truth'): motion_validation(tmp_path/'truth', sizes=(64,))
