"""Kill a stage midway (SIGKILL: no cleanup runs), run it again: the outputs equal an uninterrupted run's and no temp is left.
SIGTERM midway (what `timeout`, docker and systemd send) is handled like Ctrl-C: `a2v: terminated`, exit 143, no temp left.

Crop and render here; the inversion's in-flight checkpoint is tested in test_invert.py, workers and signals in
test_cli_signals.py."""
import os, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_bad_inputs import _make_inputs, _make_run      # the small finished run and the input files

# Runs the `a2v` command with one function wrapped so that its n-th call sends the process a signal (SIGKILL: as `kill -9` would).
KILLER = textwrap.dedent('''
    import importlib, os, signal, sys
    mod, attr, n, sig = sys.argv[1], sys.argv[2], int(sys.argv[3]), getattr(signal, sys.argv[4])
    owner_path, _, name = attr.rpartition('.')
    owner = importlib.import_module(mod)
    for part in filter(None, owner_path.split('.')): owner = getattr(owner, part)
    real, calls = getattr(owner, name), []
    def dying(*a, **k):
        calls.append(1)
        if len(calls) == n: os.kill(os.getpid(), sig)
        return real(*a, **k)
    setattr(owner, name, dying)
    from a2v.cli import main
    main(sys.argv[5:])
''')

def _env():
    env = {k: v for k, v in os.environ.items() if k not in ('A2V_FIGURES', 'A2V_DEBUG')}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', OMP_NUM_THREADS='1')
    return env

def _a2v(cwd, *args, kill=None, sig='SIGKILL'):
    "Run `a2v args`; with kill=(module, attr, n) the n-th call of module.attr sends the process `sig`."
    cmd = [sys.executable, '-c', KILLER, *map(str, kill), sig] if kill else [sys.executable, '-m', 'a2v.cli']
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600)

def _temps(d:Path) -> list: return sorted(str(p) for p in Path(d).rglob('.*') if '.tmp' in p.name)

def _videos(d:Path) -> list:
    "Two 1.2 s talking-photo videos with audio that the tiny crop keeps."
    from a2v.media import sample_photo, write_video
    face = sample_photo('grace_hopper')[::2, ::2]                                   # face ≈ 90 px
    out = []
    for i in range(2):
        frames = np.repeat(face[None], 30, 0).copy(); frames[:, :, :, i] //= 2     # two different videos
        t = np.arange(int(1.2 * 16000)) / 16000
        out.append(write_video(d/f'v{i}.mp4', frames, fps=25, audio=(0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32)))
    return out

def _clip_outputs(run:Path) -> dict:
    from a2v.crop import load_clip
    from a2v.core import read_jsonl
    rows = {r['clip']: (r['status'], r['frames']) for r in read_jsonl(run/'manifest.jsonl')}
    clips = {c: load_clip(run/'clips'/c) for c, (s, _) in rows.items() if s == 'kept'}
    return dict(rows=rows, frames={c: x.frames for c, x in clips.items()}, audio={c: x.audio for c, x in clips.items()})

@pytest.mark.slow
def test_crop_killed_then_resumed(tmp_path):
    vids = _videos(tmp_path)
    whole, killed = tmp_path/'whole', tmp_path/'killed'
    assert _a2v(tmp_path, 'crop', *vids, '--out', whole, '--workers', 1).returncode == 0
    r = _a2v(tmp_path, 'crop', *vids, '--out', killed, '--workers', 1, kill=('a2v.media', 'save_wav', 2))
    assert r.returncode == -9                                                      # killed while writing clip 2's audio
    assert _temps(killed/'clips'), 'the kill should leave a half-written clip folder behind'
    assert _a2v(tmp_path, 'crop', *vids, '--out', killed, '--workers', 1).returncode == 0
    assert _temps(killed) == []
    a, b = _clip_outputs(whole), _clip_outputs(killed)
    assert a['rows'] == b['rows'] and len(a['frames']) == 2
    for c in a['frames']:
        assert np.array_equal(a['frames'][c], b['frames'][c]) and np.array_equal(a['audio'][c], b['audio'][c])

@pytest.mark.slow
def test_render_killed_then_resumed(tmp_path):
    from a2v.media import read_video
    _make_inputs(tmp_path/'in'); _make_run(tmp_path/'run')
    args = ['render', '--run', tmp_path/'run', '--image', tmp_path/'in'/'face.png', '--audio', tmp_path/'in'/'speech.wav',
            '--set', 'render.min_face_score=0']              # (the random 32 px generator makes no faces: no face check)
    out = tmp_path/'out'
    assert _a2v(tmp_path, *args, '--out', out/'whole.mp4').returncode == 0
    r = _a2v(tmp_path, *args, '--out', out/'again.mp4', kill=('a2v.media', 'VideoWriter.write', 10))
    assert r.returncode == -9 and not (out/'again.mp4').exists()
    assert _temps(out), 'the kill should leave the streaming mp4 temp behind'
    assert _a2v(tmp_path, *args, '--out', out/'again.mp4').returncode == 0
    assert _temps(out) == [] and _temps(tmp_path/'run') == []
    a, b = read_video(out/'whole.mp4').frames, read_video(out/'again.mp4').frames      # (F, H, W, 3) each
    assert a.shape == b.shape and len(a) == 25
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 2        # same codes; H.264 decoding may round differently

@pytest.mark.slow
def test_render_sigterm_cleans_up(tmp_path):
    "SIGTERM while the render streams its mp4: one line, exit 143, and neither the temp mp4 nor any other temp is left."
    _make_inputs(tmp_path/'in'); _make_run(tmp_path/'run')
    out = tmp_path/'out'
    r = _a2v(tmp_path, 'render', '--run', tmp_path/'run', '--image', tmp_path/'in'/'face.png', '--audio', tmp_path/'in'/'speech.wav',
             '--out', out/'o.mp4', '--set', 'render.min_face_score=0', kill=('a2v.media', 'VideoWriter.write', 10), sig='SIGTERM')
    assert r.returncode == 143 and r.stderr.strip().splitlines()[-1] == 'a2v: terminated', (r.returncode, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr
    assert not (out/'o.mp4').exists() and _temps(out) == [] and _temps(tmp_path/'run') == []

@pytest.mark.slow
def test_crop_sigterm_cleans_up(tmp_path):
    "SIGTERM while the crop (one process) writes clip 2's audio: exit 143, its half-written clip folder removed; a re-run completes."
    vids = _videos(tmp_path)
    r = _a2v(tmp_path, 'crop', *vids, '--out', tmp_path/'c', '--workers', 1, kill=('a2v.media', 'save_wav', 2), sig='SIGTERM')
    assert r.returncode == 143 and r.stderr.strip().splitlines()[-1] == 'a2v: terminated', (r.returncode, r.stderr[-2000:])
    assert _temps(tmp_path/'c') == []
    assert _a2v(tmp_path, 'crop', *vids, '--out', tmp_path/'c', '--workers', 1).returncode == 0
