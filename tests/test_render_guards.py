"""Issue 35, the render's part: no input is ever overwritten, the render judges itself, and numbers that cannot be
right for the run are refused up front. Fast checks on the guards themselves; one slow test renders for real on
`test_bad_inputs`' small prepared run (a random 32 px generator, so its frames are not faces)."""
import json, os, subprocess, sys, warnings
from pathlib import Path
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from a2v.core import A2VError, A2VWarning, BadInputError, RunDir, atomic_path, get_config, remove_stale_temps
from a2v.media import save_wav
from a2v.render import _output_place, _face_check, _check_cover, check_render_config, render_video, Renderer, metrics_path

def _run_with_config(tmp_path, **overrides) -> Path:
    run = tmp_path/'run'; RunDir(run).save_config(get_config('tiny', **overrides)); return run

def test_out_is_never_an_input(tmp_path):
    photo = tmp_path/'photo.png'; photo.write_bytes(b'a photo')
    with pytest.raises(BadInputError, match='is also an input'): _output_place(photo, (photo, tmp_path/'s.wav'))
    (tmp_path/'link.png').symlink_to(photo)                                   # the same file by another name
    with pytest.raises(BadInputError, match='is also an input'): _output_place(tmp_path/'link.png', (photo,))
    os.link(tmp_path/'photo.png', tmp_path/'hard.mp4')                       # a hard link, even with a video suffix
    with pytest.raises(BadInputError, match='is also an input'): _output_place(tmp_path/'hard.mp4', (photo,))
    assert photo.read_bytes() == b'a photo'

@pytest.mark.parametrize('name', ['o.webm', 'o.png', 'o', 'o.MP4.gif'])
def test_out_suffix_is_a_video_the_writer_makes(tmp_path, name):
    with pytest.raises(BadInputError, match='--out must end in .mp4'): _output_place(tmp_path/name)
    for ok in ('o.mp4', 'o.MOV', 'o.m4v', 'o.mkv'): assert _output_place(tmp_path/ok) == tmp_path/ok

def test_out_folder_made_only_after_the_inputs_pass(tmp_path):
    run = _run_with_config(tmp_path)
    (tmp_path/'text.png').write_text('not an image'); save_wav(tmp_path/'s.wav', np.full(1600, 0.1, np.float32), 16000)
    with pytest.raises(BadInputError, match='text.png'):
        render_video(tmp_path/'text.png', tmp_path/'s.wav', tmp_path/'a'/'b'/'o.mp4', run)
    assert not (tmp_path/'a').exists()

def test_a_long_legal_out_name_has_a_legal_temp(tmp_path):
    out = tmp_path/('x' * 244 + '.mp4')                                       # 248 bytes: legal
    with atomic_path(out) as tmp:
        assert len(os.fsencode(tmp.name)) <= 255; tmp.write_bytes(b'v')
    assert out.read_bytes() == b'v' and [p.name for p in tmp_path.iterdir()] == [out.name]
    with atomic_path(tmp_path/('é' * 120 + '.mp4')) as tmp: assert len(os.fsencode(tmp.name)) <= 255   # 2 bytes a letter
    with atomic_path(tmp_path/('y.' + 'z' * 240)) as tmp: assert len(os.fsencode(tmp.name)) <= 255     # a long suffix
    from a2v.core import _temp_stem
    stale = tmp_path/f'.{_temp_stem(out.name)}.k3j2x9q1.mp4.tmp'; stale.write_bytes(b'half')   # what a kill left
    os.utime(stale, (0, 0))
    assert remove_stale_temps(tmp_path, prefix=out.name) == [stale]            # found by the long name, cut as the temp's

def test_face_check_threshold_off_and_missing():
    m = lambda s: {'mesh': {'face_score_min': s}}
    assert _face_check(m(0.92), 0.5, 'o.mp4', 2, 'paper')['passed'] is True      # the tiny demo at ×2: ≥ 0.92
    with pytest.raises(BadInputError, match=r"o.mp4: not a face in every frame: the face mesh's lowest score is 0.050.*×3"):
        _face_check(m(0.05), 0.5, 'o.mp4', 3, 'paper')                          # ×3: down to 0.05
    with pytest.raises(BadInputError, match='rotated or upside down'): _face_check(m(0.002), 0.5, 'o.mp4', 2, 'paper')
    assert _face_check(m(0.002), 0.0, 'o.mp4', 2, 'paper')['passed'] is None
    miss = _face_check({'mesh': {'missing': 'face-mesh: not in the cache'}}, 0.5, 'o.mp4', 2, 'paper')
    assert miss['passed'] is None and 'not in the cache' in miss['why']
    assert get_config('tiny').render.min_face_score == get_config('paper').render.min_face_score == 0.5
    with pytest.raises(A2VError, match='render.min_face_score'): get_config('tiny', **{'render.min_face_score': 1.5})

def test_speech_silent_nan_and_not_covered(tmp_path):
    save_wav(tmp_path/'silent.wav', np.zeros(16000, np.float32), 16000)
    with pytest.raises(BadInputError, match='silent.wav: the speech is silent'): Renderer._speech(tmp_path/'silent.wav')
    with pytest.raises(BadInputError, match='NaN or infinite'): Renderer._speech(np.r_[np.zeros(800), np.nan].astype(np.float32))
    assert len(Renderer._speech(np.zeros(800, np.float32))) == 800             # an array of zeros: a still face, on purpose
    _check_cover(76, 25.0, 3.04, 's.wav')
    with pytest.raises(BadInputError, match='s.wav: 76 frames at 30 fps last 2.53 s, the speech 3.04 s'): _check_cover(76, 30.0, 3.04, 's.wav')

def test_numbers_checked_against_the_run(tmp_path):
    run = _run_with_config(tmp_path)
    with warnings.catch_warnings(): warnings.simplefilter('error'); check_render_config(run, get_config('tiny'))
    with pytest.raises(A2VError, match=r"crop.fps: 30 is not this run's \(25 fps"):
        check_render_config(run, get_config('tiny', **{'crop.fps': 30}))
    for m in (500, 1e6, -2):
        with pytest.warns(A2VWarning, match='safe range is 0 to 3'): check_render_config(run, get_config('tiny', **{'render.magnify': m}))
    with warnings.catch_warnings():                                            # calibrated mode does not use the factor
        warnings.simplefilter('error'); check_render_config(run, get_config('tiny', **{'render.magnify': 1e6, 'render.mode': 'calibrated'}))
    with pytest.raises(A2VError, match='render.photo_steps_factor'): get_config('tiny', **{'render.photo_steps_factor': 0})

def test_config_must_name_its_preset(tmp_path):
    rd = RunDir(tmp_path)
    rd.config.write_text('{}')
    with pytest.raises(BadInputError, match=r"config.json: not a readable config \(no key 'preset'\)"): rd.load_config()
    rd.config.write_text(json.dumps({'preset': 'tiny', 'vae': {'epochs': 7}}))
    cfg = rd.load_config()
    assert cfg.vae.epochs == 7 and cfg.generator.source == get_config('tiny').generator.source   # no NVIDIA pickle

def test_vae_stats_and_split_checked(tmp_path):
    from a2v.core import append_jsonl
    from a2v.vae import _stats_checked, load_split
    (tmp_path/'vae').mkdir()
    for bad in ('NaN', '0', '-0.5', 'Infinity', '"x"'):
        (tmp_path/'vae'/'stats.json').write_text(f'{{"sigma_code": {bad}, "mu_code": 0, "layers": [1]}}')
        with pytest.raises(BadInputError, match='stats.json: sigma_code'): _stats_checked(tmp_path/'vae'/'stats.json')
    append_jsonl(tmp_path/'manifest.jsonl', dict(clip='c0', status='kept'))
    (tmp_path/'vae'/'split.json').write_text('{"train": ["c0", "nosuch"], "val": []}')
    with pytest.raises(BadInputError, match=r"split.json: names clip 'nosuch' \(train\).*a2v train-vae"): load_split(tmp_path)

# ---- for real, through the command, on test_bad_inputs' small prepared run

@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    from test_bad_inputs import _make_run, _make_inputs
    base = tmp_path_factory.mktemp('guards')
    _make_inputs(base/'in'); _make_run(base/'run')
    return base

def _a2v(*args, cwd):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'OMP_NUM_THREADS': '1'}
    env.pop('A2V_DEBUG', None)
    return subprocess.run([sys.executable, '-m', 'a2v.cli', *map(str, args)], capture_output=True, text=True, timeout=600, cwd=cwd, env=env)

@pytest.mark.slow
def test_render_judges_itself_and_writes_a_long_name(prepared, tmp_path):
    "Random-weight frames are not faces: refused, nothing written; with the check off, a 248-byte --out is written."
    from a2v.metrics import face_mesh_or_why
    run, inp = prepared/'run', prepared/'in'
    args = ['render', '--run', run, '--image', inp/'face.png', '--audio', inp/'speech.wav']
    has_mesh = face_mesh_or_why()[0] is not None
    r = _a2v(*args, '--out', tmp_path/'o.mp4', cwd=tmp_path)
    if has_mesh:
        lines = [l for l in r.stderr.splitlines() if l.startswith('a2v:')]      # (MediaPipe may print an INFO line too)
        assert r.returncode == 1 and len(lines) == 1 and 'o.mp4: not a face in every frame' in lines[0], r.stderr
        assert not (tmp_path/'o.mp4').exists() and not list(tmp_path.glob('.o.mp4*'))
    else: assert r.returncode == 0 and json.loads((tmp_path/'o.metrics.json').read_text())['face_check']['passed'] is None
    out = tmp_path/('x' * 244 + '.mp4')
    r = _a2v(*args, '--out', out, '--set', 'render.min_face_score=0', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    m = json.loads(metrics_path(out).read_text())
    assert out.stat().st_size > 0 and m['face_check']['passed'] is None and m['face_check']['threshold'] == 0
    r = _a2v(*args, '--out', tmp_path/'b.mp4', '--set', 'render.min_face_score=0', '--magnify', '1e6', cwd=tmp_path)
    assert r.returncode == 0 and 'a2v: warning: render.magnify=1e+06 is far outside' in r.stderr, r.stderr
