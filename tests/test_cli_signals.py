"""The `a2v` process on real subprocesses: SIGTERM is handled like Ctrl-C, workers die with their parent (the crop's,
the inversion's, the sample data's, and the pipeline's notebook kernels with theirs), a bare `a2v` prints its help,
and `a2v crop` gives every source its own clip id.

SIGTERM of a render (mid-write) is in test_kill_resume.py; `invert --clips nosuchclip` is a row of test_bad_inputs.py."""
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))
from test_bad_inputs import _make_run
from test_kill_resume import _env, _temps

def _start(cwd, *args) -> subprocess.Popen:
    "Start `a2v args`; its output goes to files (an orphan that keeps a pipe open would block reading it): `_output(p)`."
    out, err = (open(Path(cwd)/f'a2v.{k}', 'w') for k in ('stdout', 'stderr'))
    p = subprocess.Popen([sys.executable, '-m', 'a2v.cli', *map(str, args)], cwd=cwd, env=_env(), stdout=out, stderr=err, text=True)
    p.cwd = Path(cwd); out.close(); err.close()
    return p

def _output(p:subprocess.Popen, timeout:float=60) -> tuple[str, str]:
    "Wait for `p`; its (stdout, stderr)."
    p.wait(timeout)
    return tuple((p.cwd/f'a2v.{k}').read_text() for k in ('stdout', 'stderr'))

def _wait_for(cond, timeout:float, what:str, p:subprocess.Popen|None=None):
    t0 = time.time()
    while not cond():
        if p is not None and p.poll() is not None: raise AssertionError(f'ended before {what}: {_output(p)}')
        if time.time() - t0 > timeout: raise AssertionError(f'no {what} after {timeout} s')
        time.sleep(0.05)

def _descendants(pid:int) -> list:
    import psutil
    return psutil.Process(pid).children(recursive=True)

def _alive(procs:list) -> list:
    "The processes of `procs` still running (a zombie that no one reaped has ended)."
    import psutil
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE: out.append(p)
        except psutil.NoSuchProcess: pass
    return out

def _gone_within(procs:list, seconds:float) -> float:
    "Seconds until every process of `procs` ended (fails after `seconds`, killing the survivors)."
    t0 = time.time()
    while _alive(procs) and time.time() - t0 < seconds: time.sleep(0.1)
    left = _alive(procs)
    for p in left: p.kill()
    assert not left, f'{len(left)} worker(s) outlived their parent by {seconds} s: {[p.cmdline()[-2:] for p in left]}'
    return time.time() - t0

@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    run = tmp_path_factory.mktemp('sig')/'run'; _make_run(run)
    return run

def _invert_run(prepared:Path, d:Path) -> Path:
    "A copy of the small run without its latents: what `a2v invert` has to do."
    run = d/'run'; shutil.copytree(prepared, run); shutil.rmtree(run/'latents')
    return run

# two workers on three clips, with steps enough to run for minutes, each writing its checkpoint every 0.2 s
SLOW_INVERT = ('--set', 'invert.workers=2', '--set', 'invert.steps_first=100000', '--set', 'invert.checkpoint_s=0.2')
def _both_workers_stepping(run): return lambda: all((run/'latents'/f'.inflight-w{k}.pt').exists() for k in (0, 1))

@pytest.mark.slow
def test_sigkill_of_invert_leaves_no_worker(prepared, tmp_path):
    run = _invert_run(prepared, tmp_path)
    p = _start(tmp_path, 'invert', '--run', run, *SLOW_INVERT)
    _wait_for(_both_workers_stepping(run), 180, 'worker checkpoints', p)
    workers = _descendants(p.pid)
    assert len([w for w in workers if 'spawn_main' in _cmdline(w)]) >= 2, [w.cmdline() for w in workers]
    p.kill(); p.wait()
    print(f'workers gone {_gone_within(workers, 10):.1f} s after the SIGKILL')
    before = {q: q.stat().st_mtime_ns for q in run.rglob('*')}
    time.sleep(1)
    assert {q: q.stat().st_mtime_ns for q in run.rglob('*')} == before, 'something still writes into the run'
    assert _temps(run) == []

@pytest.mark.slow
def test_sigterm_of_invert_with_workers(prepared, tmp_path):
    run = _invert_run(prepared, tmp_path)
    p = _start(tmp_path, 'invert', '--run', run, *SLOW_INVERT)
    _wait_for(_both_workers_stepping(run), 180, 'worker checkpoints', p)
    workers = _descendants(p.pid)
    t0 = time.time(); p.terminate(); out, err = _output(p)
    print(f'exit {p.returncode} {time.time() - t0:.1f} s after the SIGTERM')
    assert p.returncode == 143 and err.strip().splitlines()[-1] == 'a2v: terminated', (p.returncode, err[-2000:])
    assert 'Traceback' not in err
    _gone_within(workers, 5)
    assert _temps(run) == []

def _long_videos(d:Path, n:int=2) -> list:
    "`n` different 4 s talking-photo videos that the tiny crop keeps (long enough to be caught mid-crop)."
    from a2v.media import sample_photo, write_video
    face = sample_photo('grace_hopper')[::2, ::2]                                   # face ≈ 90 px
    out = []
    for i in range(n):
        frames = np.repeat(face[None], 100, 0).copy(); frames[:, :, :, i % 3] //= 2
        t = np.arange(4 * 16000) / 16000
        out.append(write_video(d/f'v{i}.mp4', frames, fps=25, audio=(0.2 * np.sin(2 * np.pi * (200 + 50 * i) * t)).astype(np.float32)))
    return out

def _crop_temps(out:Path): return lambda: bool(list((out/'clips').glob('.*.tmp-*')))

@pytest.mark.slow
@pytest.mark.parametrize('sig', ['SIGTERM', 'SIGKILL'])
def test_crop_workers_signal(tmp_path, sig):
    vids, out = _long_videos(tmp_path), tmp_path/'c'
    p = _start(tmp_path, 'crop', *vids, '--out', out, '--workers', 2)
    _wait_for(_crop_temps(out), 180, 'a clip being written', p)
    workers = _descendants(p.pid)
    p.send_signal(getattr(signal, sig)); out_, err = _output(p)
    if sig == 'SIGTERM':
        assert p.returncode == 143 and err.strip().splitlines()[-1] == 'a2v: terminated', (p.returncode, err[-2000:])
        assert 'Traceback' not in err
    _gone_within(workers, 10)
    if sig == 'SIGTERM': assert _temps(out) == []

def test_bare_a2v_prints_its_help(tmp_path):
    for args in ([], ['weights']):
        p = subprocess.run([sys.executable, '-m', 'a2v.cli', *args], cwd=tmp_path, env=_env(), capture_output=True, text=True)
        assert p.returncode == 0 and p.stdout.startswith(f"Usage: a2v {' '.join(args)}".rstrip() + ' ') and p.stderr == '', p

@pytest.mark.slow
def test_crop_ids_unique_per_out(tmp_path):
    "Another video of a known stem gets its own id; the same file again (another path to it) is the same clip."
    from a2v.core import read_jsonl
    vids = _long_videos(tmp_path, 2)
    for i, v in enumerate(vids):
        (tmp_path/f'dup{i}').mkdir(); shutil.copy(v, tmp_path/f'dup{i}'/'talk.mp4')
    (tmp_path/'link').mkdir(); os.symlink(tmp_path/'dup0'/'talk.mp4', tmp_path/'link'/'talk.mp4')
    out = tmp_path/'C'
    crop = lambda *v: subprocess.run([sys.executable, '-m', 'a2v.cli', 'crop', *map(str, v), '--out', str(out), '--workers', '1'],
                                     cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert crop(tmp_path/'dup0'/'talk.mp4').returncode == 0
    r = crop(tmp_path/'dup1'/'talk.mp4'); assert r.returncode == 0, r.stderr
    rows = {m['clip']: m for m in read_jsonl(out/'manifest.jsonl')}
    assert sorted(rows) == ['talk', 'talk-2'] and all(m['status'] == 'kept' for m in rows.values()), rows
    assert Path(rows['talk-2']['source']).parent.name == 'dup1'
    r = crop(tmp_path/'link'/'talk.mp4', tmp_path/'dup1'/'talk.mp4', 'dup0/talk.mp4')   # two sources, both known
    assert r.returncode == 0 and '2 of 2 clips kept' in r.stdout, r.stdout
    assert sorted(m['clip'] for m in read_jsonl(out/'manifest.jsonl')) == ['talk', 'talk-2']
    out = tmp_path/'D'                                                              # the same file twice: one clip
    r = crop(tmp_path/'link'/'talk.mp4', tmp_path/'dup0'/'talk.mp4')
    assert r.returncode == 0 and '1 of 1 clips kept' in r.stdout, r.stdout
    assert [m['clip'] for m in read_jsonl(out/'manifest.jsonl')] == ['talk']

def _cmdline(w) -> str:
    "A process's command line, '' once it has ended (it may turn zombie between `_alive` and this read)."
    import psutil
    try: return ' '.join(w.cmdline())
    except psutil.Error: return ''

def _spawned(p:subprocess.Popen) -> list:
    "The pool workers (spawned processes) among `p`'s descendants."
    return [w for w in _alive(_descendants(p.pid)) if 'spawn_main' in _cmdline(w)]

@pytest.mark.slow
@pytest.mark.parametrize('sig', ['SIGTERM', 'SIGKILL'])
def test_sample_data_workers_signal(tmp_path, sig):
    "`a2v sample-data` builds clips on a pool: a signal to it ends its workers too (SIGTERM: their half-written clips go)."
    out = tmp_path/'d'
    p = _start(tmp_path, 'sample-data', '--out', out, '--clips', 6, '--no-bad')
    _wait_for(lambda: len(_spawned(p)) >= 2 and _temps(out), 120, 'two clip builders, one writing its clip', p)
    workers = _descendants(p.pid)
    p.send_signal(getattr(signal, sig)); out_, err = _output(p)
    if sig == 'SIGTERM':
        assert p.returncode == 143 and err.strip().splitlines()[-1] == 'a2v: terminated', (p.returncode, err[-2000:])
        assert 'Traceback' not in err
    # 30 s: a worker still importing when its parent dies arms its parent-death signal (`die_with_parent`) only once
    # its imports are done, which on a loaded 2-core machine took more than 10 s once in three clean-clone runs
    print(f'workers gone {_gone_within(workers, 30):.1f} s after the {sig}')
    if sig == 'SIGTERM': assert _temps(out) == []

@pytest.mark.slow
@pytest.mark.parametrize('sig,jobs', [('SIGTERM', 1), ('SIGKILL', 2)])
def test_pipeline_signal_leaves_no_kernel(tmp_path, sig, jobs):
    """`a2v pipeline` runs its stages in notebook kernels: SIGTERM interrupts them (the stage cleans up), SIGKILL orphans
    them; either way no kernel, and no worker of one, outlives it."""
    run = tmp_path/'run'
    p = _start(tmp_path, 'pipeline', '--run', run, '--jobs', jobs)
    _wait_for(lambda: len(_spawned(p)) >= 2 and _temps(run), 180, "the sample-data stage's workers in its kernel, writing a clip", p)
    procs = _descendants(p.pid)
    assert any('ipykernel' in _cmdline(q) for q in procs), [q.cmdline() for q in procs]
    p.send_signal(getattr(signal, sig)); out, err = _output(p)
    if sig == 'SIGTERM':
        assert p.returncode == 143 and err.strip().splitlines()[-1] == 'a2v: terminated', (p.returncode, err[-2000:])
        assert 'Traceback' not in err
    print(f'kernel and workers gone {_gone_within(procs, 15):.1f} s after the {sig}')
    if sig == 'SIGTERM': assert _temps(run) == []
    assert not (run/'.lock').exists() or sig == 'SIGKILL'
