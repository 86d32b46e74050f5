"""Issue 35, the run's state: a model trained on other data is trained again, one writer at a time, and resource
errors (a full disk, a memory limit, a deleted current folder) end in one line that names the file and the resource.

Each test runs the `a2v` command as a subprocess on a copy of `test_bad_inputs`' small prepared run. A full disk is
simulated by a wrapper that makes one function raise what the real one raises on a full disk (as `test_kill_resume`'s
KILLER makes one send a signal); the memory limit is a real `ulimit -v` (`resource.setrlimit` before the command)."""
import errno, json, os, resource, shutil, subprocess, sys, textwrap, time, wave
from pathlib import Path
import numpy as np, pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_bad_inputs import _make_inputs, _make_run
from test_kill_resume import _env, _temps

# Runs `a2v ARGS` with one function replaced: `module.attr` raises what the machine would (see `RAISES`), or blocks.
WRAPPER = textwrap.dedent('''
    import errno, importlib, sys, time
    mod, attr, how = sys.argv[1:4]
    owner_path, _, name = attr.rpartition('.')
    owner = importlib.import_module(mod)
    for part in filter(None, owner_path.split('.')): owner = getattr(owner, part)
    def replaced(*a, **k):
        if how == 'block': print('holding', flush=True); time.sleep(120)
        if how == 'safetensors_full':
            from safetensors import SafetensorError
            open(a[1], 'wb').write(b'half a file')                               # safetensors' words for a full disk
            raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })')
        if how == 'enospc': raise OSError(errno.ENOSPC, 'No space left on device')  # a write that names no file
        raise ValueError(how)
    setattr(owner, name, replaced)
    from a2v.cli import main
    main(sys.argv[4:])
''')

def _a2v(cwd, *args, replace=None, preexec_fn=None, timeout=300):
    "Run `a2v args` (with replace=(module, attr, how): that function replaced, see WRAPPER)."
    cmd = [sys.executable, '-c', WRAPPER, *replace] if replace else [sys.executable, '-m', 'a2v.cli']
    return subprocess.run(cmd + [str(a) for a in args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout, preexec_fn=preexec_fn)

def _one_line(r) -> str:
    "The one line a failed command printed (no traceback, nothing else on stderr)."
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert r.returncode == 1 and len(lines) == 1 and 'Traceback' not in r.stderr + r.stdout, (r.returncode, r.stderr[-3000:])
    return lines[0]

@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    base = tmp_path_factory.mktemp('state'); _make_run(base/'run'); _make_inputs(base/'in')
    return base

def _copy(prepared:Path, d:Path) -> Path:
    run = d/'run'; shutil.copytree(prepared/'run', run)       # (copytree keeps the files' times: nothing looks re-made)
    return run

def _warnings(r) -> list: return [l for l in r.stderr.splitlines() if l.startswith('a2v: warning:')]

# ---- stale state
@pytest.mark.slow
def test_deleted_latents_retrain_the_vae_and_embed2lat(prepared, tmp_path):
    "The issue's example: a clip's latents deleted after train-vae; train-vae trains again, on one clip fewer, and says why."
    run = _copy(prepared, tmp_path)
    before = json.loads((run/'vae'/'metrics.json').read_text())
    split = json.loads((run/'vae'/'split.json').read_text())
    gone = split['train'][0]
    (run/'latents'/f'{gone}.safetensors').unlink()
    r = _a2v(tmp_path, 'train-vae', '--run', run)
    assert r.returncode == 0, r.stderr[-2000:]
    assert _warnings(r) == [f"a2v: warning: train-vae: inputs changed since the model was trained (train clip {gone}'s latents removed): retraining"]
    after = json.loads((run/'vae'/'metrics.json').read_text())
    assert after['n_train_clips'] == before['n_train_clips'] - 1
    assert not (run/'vae'/'mu'/f'{gone}.safetensors').exists()
    r = _a2v(tmp_path, 'train-vae', '--run', run)                                   # nothing changed since: no retraining
    assert r.returncode == 0 and _warnings(r) == [] and json.loads((run/'vae'/'metrics.json').read_text()) == after, r.stderr
    r = _a2v(tmp_path, 'train-embed2lat', '--run', run)                              # the VAE's new μ* make Embed2Lat stale too
    assert r.returncode == 0, r.stderr[-2000:]
    [w] = _warnings(r)
    assert w.startswith('a2v: warning: train-embed2lat: inputs changed since the model was trained (') and w.endswith('): retraining'), w
    assert json.loads((run/'embed2lat'/'metrics.json').read_text())['n_train_clips'] == after['n_train_clips']

# ---- one writer at a time
def _wait_for_line(p, text:str, timeout:float=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        line = p.stdout.readline()
        if text in line: return
        if not line and p.poll() is not None: raise AssertionError(f'ended before {text!r}: {p.stderr.read()[-2000:]}')
    raise AssertionError(f'no {text!r} after {timeout} s')

@pytest.mark.slow
def test_second_writer_is_refused_until_the_first_ends(prepared, tmp_path):
    run = _copy(prepared, tmp_path)
    holder = subprocess.Popen([sys.executable, '-c', WRAPPER, 'a2v.pipeline', 'run_stage', 'block', 'train-vae', '--run', str(run)],
                              cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_line(holder, 'holding')                                           # inside train-vae, holding the run
        assert (run/'.lock').read_text().split() == [str(holder.pid), 'a2v', 'train-vae']
        for cmd in (['invert'], ['embed-audio'], ['pipeline', '--no-notebooks']):
            line = _one_line(_a2v(tmp_path, *cmd, '--run', run))
            assert line == (f'a2v: error: {run}: the run is in use by pid {holder.pid} (a2v train-vae); wait for it to end '
                            f'or stop it, then run a2v {cmd[0]} again'), line
        r = _a2v(tmp_path, 'render', '--run', run, '--image', prepared/'in'/'face.png', '--audio', prepared/'in'/'speech.wav',
                 '--out', run/'renders'/'o.mp4')                                    # a render into the run writes into it
        assert 'the run is in use by pid' in _one_line(r)
    finally: holder.kill(); holder.wait()
    r = _a2v(tmp_path, 'embed-audio', '--run', run)                                  # its lock died with it
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (run/'.lock').exists()

# ---- resources
@pytest.mark.slow
def test_full_disk_names_the_file(prepared, tmp_path):
    "safetensors' own words for a full disk, while the VAE's weights are written: the line names that file; no temp is left."
    run = _copy(prepared, tmp_path); shutil.rmtree(run/'vae')
    r = _a2v(tmp_path, 'train-vae', '--run', run, replace=('safetensors.torch', 'save_file', 'safetensors_full'))
    line = _one_line(r)
    assert line.startswith(f'a2v: error: {run}/vae/model.safetensors: no space left on the disk holding it (') and ' MB free)' in line, line
    assert _temps(run) == [] and not (run/'vae'/'model.safetensors').exists()

@pytest.mark.slow
def test_full_disk_without_a_file_names_the_run(prepared, tmp_path):
    "An ENOSPC that names no file, inside a stage: the line names the run it was writing into."
    run = _copy(prepared, tmp_path); shutil.rmtree(run/'vae')
    line = _one_line(_a2v(tmp_path, 'train-vae', '--run', run, replace=('a2v.vae', 'code_stats', 'enospc')))
    assert line.startswith(f'a2v: error: {run}: no space left on the disk holding it ('), line

def _limit_memory(): resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))   # `ulimit -v 3145728`: 3 GB

def test_memory_limit_is_named(tmp_path):
    "torch does not load under a 3 GB address-space limit: one line naming the limit, not an ImportError or MemoryError."
    r = _a2v(tmp_path, 'weights', 'list', preexec_fn=_limit_memory)                  # (the registry imports torch)
    if r.returncode == 0: pytest.skip('torch loads within 3 GB of address space here')
    line = _one_line(r)
    assert line.startswith('a2v: error: memory: out of memory (') and '`ulimit -v` of 3072 MB' in line, line

def test_deleted_current_folder(tmp_path):
    gone = tmp_path/'gone'; gone.mkdir()
    def _enter_and_delete(): os.chdir(gone); os.rmdir(gone)
    r = subprocess.run([sys.executable, '-m', 'a2v.cli', 'train-vae', '--run', 'runs/x'], env={**_env(), 'PWD': str(gone)},
                       capture_output=True, text=True, preexec_fn=_enter_and_delete, timeout=60)
    assert _one_line(r) == f'a2v: error: {gone}: the current folder was deleted; cd into an existing folder and run the command again'

# ---- warnings
def _stereo_cancelling(path:Path):
    "Stereo speech whose channels cancel (L = −R): averaged it is silence."
    x = 0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000) * (1 + np.sin(2 * np.pi * 3 * np.arange(16000) / 16000))
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(2); w.setsampwidth(2); w.setframerate(16000)
        w.writeframes((np.stack([x, -x], 1) * 16000).astype('<i2').tobytes())

@pytest.mark.slow
def test_a_warning_prints_once(prepared, tmp_path):
    "The render reads the speech twice (checked up front, then rendered): its warning is still one line."
    run = _copy(prepared, tmp_path); _stereo_cancelling(tmp_path/'cancel.wav')
    r = _a2v(tmp_path, 'render', '--run', run, '--image', prepared/'in'/'face.png', '--audio', tmp_path/'cancel.wav',
             '--out', tmp_path/'o.mp4', '--set', 'render.min_face_score=0')
    assert r.returncode == 0, r.stderr[-2000:]
    assert _warnings(r) == [f'a2v: warning: {tmp_path}/cancel.wav: its channels cancel when averaged (opposite phase: the mean '
                            'keeps 0.0% of the energy of the left channel); using the left channel alone'], r.stderr
