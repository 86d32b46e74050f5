"Tests of a2v.invert beyond the notebook: batching parity, schedule, NaN isolation, resume, torchrun sharding."
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import numpy as np, pytest, torch
from a2v.core import *
from a2v import invert as inv
from a2v.stylegan3 import Generator, save_generator
from a2v.lpips import get_lpips

torch.set_num_threads(min(2, torch.get_num_threads()))
ARCH = dict(z_dim=32, w_dim=32, img_resolution=32, channel_base=512, channel_max=32, num_layers=4, conv_kernel=1,
            use_radial_filters=True, lrelu_upsampling=1)    # a fast random-init StyleGAN3-R (6 W+ rows, 32 px)
OVR = {'invert.steps_first': 6, 'invert.steps_next': 2, 'device': 'cpu', 'generator.source': 'generator/generator.safetensors'}
EQ = {'invert.steps_first': 3, 'invert.steps_next': 1}   # parity checks: short, see the notebook on Adam and rounding
OPTS = ('adam', 'lbfgs')

@pytest.fixture(scope='module')
def G():
    torch.manual_seed(0)
    return Generator(**ARCH).eval().requires_grad_(False)

@pytest.fixture(scope='module')
def lpips(): return get_lpips('alex', device='cpu')

def _clip(G, n, seed):
    "Frames (n, 3, H, W) along a short path in W+ (the generator's own images)."
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        wa, wb = G.mapping(torch.randn(2, G.z_dim, generator=g))
        a = torch.linspace(0, 1, n)[:, None, None]
        return G.synthesis(wa + 0.3 * a * (wb - wa), noise_mode='const').clamp(-1, 1)

@pytest.fixture(scope='module')
def clips(G): return {f'c{i}': _clip(G, n, i) for i, n in enumerate((1, 3, 2, 4))}

def _cfg(**kw): return get_config('tiny', **{**OVR, **kw})

@pytest.fixture(scope='module')
def singles(G, lpips, clips):
    "Each clip inverted on its own (the reference for the batched runs), with each optimiser."
    return {o: {cid: inv.invert_sequence(G, f, _cfg(**EQ, **{'invert.optimizer': o}), lpips, clip_id=cid) for cid, f in clips.items()}
            for o in OPTS}

def test_shapes(G, lpips, clips):
    r = inv.invert_sequence(G, clips['c3'], _cfg(**EQ), lpips, clip_id='c3')
    assert r['error'] is None
    assert r['ws'].shape == (4, G.num_ws, G.w_dim)
    for k in ('mse', 'lpips', 'psnr'): assert r[k].shape == (4,) and torch.isfinite(r[k]).all()
    assert r['loss0'].shape == (3,)
    u8 = ((clips['c1'] + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()          # uint8 (F, H, W, 3) input
    assert inv.invert_sequence(G, u8, _cfg(**EQ), lpips, clip_id='u')['ws'].shape == (3, G.num_ws, G.w_dim)
    w, losses = inv.invert_image(G, u8[0], _cfg(**EQ), lpips, steps=4)
    assert w.shape == (G.num_ws, G.w_dim) and losses.shape == (4,)

def assert_same_inversion(G, a, b):
    """Two inversions of one clip agree: the images of their codes (max 1e-2, mean 2e-4), per-frame LPIPS, and all but a few code
    coordinates (Adam turns float rounding into lr-sized steps where a coordinate's gradient is ~0; see the notebook)."""
    assert a['ws'].shape == b['ws'].shape
    d = (a['ws'] - b['ws']).abs()
    assert d.mean() < 1e-4 and (d > 1e-3).float().mean() < 0.01, (d.mean(), (d > 1e-3).float().mean())
    with torch.no_grad():
        di = (G.synthesis(a['ws'], noise_mode='const') - G.synthesis(b['ws'], noise_mode='const')).abs()
    assert di.max() < 1e-2 and di.mean() < 2e-4, (di.max(), di.mean())
    torch.testing.assert_close(a['lpips'], b['lpips'], atol=1e-4, rtol=0)

@pytest.mark.parametrize('opt', OPTS)
@pytest.mark.parametrize('batch', [2, 3])
def test_batched_equals_single(G, lpips, clips, singles, batch, opt):
    batched = dict(inv.invert_clips(G, clips, _cfg(**EQ, **{'invert.optimizer': opt}), lpips, batch_size=batch))
    assert sorted(batched) == sorted(clips)
    for cid, frames in clips.items():
        assert batched[cid]['ws'].shape == (len(frames), G.num_ws, G.w_dim)
        assert_same_inversion(G, batched[cid], singles[opt][cid])

def test_schedule_and_adam_reset(G, lpips, clips, monkeypatch):
    "Frame 0: lr_first for half its steps then lr_first_end; later frames: lr_next with a fresh Adam state."
    seen, step = [], inv.BatchAdam.step
    def spy(self, p, grad, rows, lr, loss=None):
        step(self, p, grad, rows, lr, loss); seen.append((lr.tolist(), self.t[rows].tolist()))
    monkeypatch.setattr(inv.BatchAdam, 'step', spy)
    cfg = _cfg(**{'invert.optimizer': 'adam', 'invert.lr_first_end': 0.015})
    inv.invert_sequence(G, clips['c1'], cfg, lpips)
    c = cfg.invert
    assert [l[0] for l, _ in seen] == pytest.approx([c.lr_first] * 3 + [c.lr_first_end] * 3 + [c.lr_next] * 4, rel=1e-6)
    assert [t[0] for _, t in seen] == [1, 2, 3, 4, 5, 6, 1, 2, 1, 2]
    assert inv.step_lr(499, 1000, 0.02, 0.01) == 0.02 and inv.step_lr(500, 1000, 0.02, 0.01) == 0.01

def test_lbfgs_memory_follows_the_clip(G, lpips, clips, monkeypatch):
    "L-BFGS: a clip's later frames start with the curvature pairs its earlier frames gathered; a new clip starts with none."
    calls, real_reset, real_new = [], inv.BatchLBFGS.reset, inv.BatchLBFGS.new_frame
    monkeypatch.setattr(inv.BatchLBFGS, 'reset', lambda self, rows: (calls.append('reset'), real_reset(self, rows))[1])
    monkeypatch.setattr(inv.BatchLBFGS, 'new_frame', lambda self, i, mem: (calls.append(int(mem['k'])), real_new(self, i, mem))[1])
    cfg = _cfg(**{**EQ, 'invert.optimizer': 'lbfgs', 'invert.steps_first': 4, 'invert.steps_next': 2, 'invert.memory': 5})
    two = {'c1': clips['c1'], 'c2': clips['c2']}                    # 3 and 2 frames, one slot
    r = dict(inv.invert_clips(G, two, cfg, lpips, batch_size=1))
    assert all(r[c]['error'] is None for c in two)
    # frame 0 (4 steps) gathers up to 3 pairs, each later frame (2 steps) up to 1 more, at most `memory`; a new clip: reset
    assert calls[0] == 'reset' and calls[3] == 'reset' and len(calls) == 5, calls
    assert 0 < calls[1] <= 3 and calls[1] <= calls[2] <= min(calls[1] + 1, 5) and 0 < calls[4] <= 3, calls

def test_lbfgs_undoes_steps_that_raise_the_loss(G, lpips, clips, monkeypatch):
    "Steps uphill: every one is undone (a frame's last one too), so each frame keeps its start, and the MSE recorded is the kept code's."
    monkeypatch.setattr(inv.BatchLBFGS, 'direction', lambda self, g, rows, lr: -0.05 * g.sign())
    cfg = _cfg(**{'invert.optimizer': 'lbfgs', 'invert.steps_first': 5, 'invert.steps_next': 2, 'invert.anchor': 0.0})
    r = inv.invert_sequence(G, clips['c3'], cfg, lpips, clip_id='c3')
    w_avg = G.mapping.w_avg.expand(G.num_ws, -1)
    for f in range(4): assert torch.equal(r['ws'][f], w_avg), f        # every frame kept its start: the 'w_avg' init
    with torch.no_grad(): mse = (G.synthesis(r['ws'], noise_mode='const') - clips['c3']).pow(2).mean((1, 2, 3))   # (F,)
    torch.testing.assert_close(r['mse'], mse, atol=1e-7, rtol=1e-5)

def test_lbfgs_frames_never_end_worse_than_they_start(G, lpips, clips):
    "With anchor 0 a later frame starts at the previous frame's code: its final loss is never above that start's."
    cfg = _cfg(**{'invert.optimizer': 'lbfgs', 'invert.steps_first': 6, 'invert.steps_next': 2, 'invert.anchor': 0.0})
    r = inv.invert_sequence(G, clips['c3'], cfg, lpips, clip_id='c3')
    with torch.no_grad(): start = (G.synthesis(r['ws'][:-1], noise_mode='const') - clips['c3'][1:]).pow(2).mean((1, 2, 3))
    assert (r['mse'][1:] <= start + 1e-7).all() and (r['mse'][1:] < start).any(), (r['mse'], start)

def test_batch_adam_matches_torch():
    p = torch.randn(2, 3, 4); refs = [p[i:i + 1].clone().requires_grad_() for i in range(2)]
    opts = [torch.optim.Adam([r], lr=lr) for r, lr in zip(refs, (0.02, 0.01))]
    ba = inv.BatchAdam(p.shape, 'cpu')
    for _ in range(7):
        g = torch.randn(2, 3, 4)
        ba.step(p, g, torch.tensor([0, 1]), torch.tensor([0.02, 0.01]))
        for i in range(2): refs[i].grad = g[i:i + 1]; opts[i].step()
    torch.testing.assert_close(p, torch.cat([r.detach() for r in refs]), atol=1e-6, rtol=0)

def test_nan_stops_one_clip(G, lpips, clips, singles):
    cfg = _cfg(**EQ)
    bad = dict(clips); bad['c1'] = clips['c1'].clone(); bad['c1'][2, 1, 3, 3] = float('inf')
    r = dict(inv.invert_clips(G, bad, cfg, lpips, batch_size=4))
    assert r['c1']['ws'] is None and 'non-finite loss' in r['c1']['error'] and 'frame 2' in r['c1']['error']
    for cid in ('c0', 'c2', 'c3'):
        assert r[cid]['error'] is None
        assert_same_inversion(G, r[cid], singles['lbfgs'][cid])

def test_initialisations(G, lpips, clips):
    t = clips['c0'][0]
    a = inv.initial_ws(G, t, 'random', seed=3, clip_id='x')
    assert torch.equal(a, inv.initial_ws(G, t, 'random', seed=3, clip_id='x'))
    assert not torch.equal(a, inv.initial_ws(G, t, 'random', seed=4, clip_id='x'))
    assert torch.equal(inv.initial_ws(G, t, 'w_avg'), G.mapping.w_avg.expand(G.num_ws, -1))
    with pytest.raises(A2VError, match="unknown invert.init 'best_of_n'"): inv.initial_ws(G, t, 'best_of_n')
    r = inv.invert_sequence(G, clips['c0'], _cfg(**{'invert.init': 'w_avg'}), lpips)
    assert r['error'] is None

# ---- the stage on a run directory
def _write_clip(run, cid, frames):
    from a2v.media import write_video, save_wav
    rd = RunDir(run); d = rd.clip_dir(cid)
    u8 = ((frames.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()   # (F, H, W, 3)
    write_video(d/'frames.mp4', u8, fps=25, crf=0)
    save_wav(d/'audio.wav', np.zeros(len(u8) * 640, np.float32), 16000)
    atomic_write_json(d/'meta.json', dict(frames=len(u8), fps=25.0, sample_rate=16000))
    append_jsonl(rd.manifest, dict(clip=cid, source='test', status='kept', reason=None, frames=len(u8), fps=25.0))

@pytest.fixture()
def run(tmp_path, G, clips):
    run = tmp_path/'run'
    for cid, frames in clips.items(): _write_clip(run, cid, frames)
    append_jsonl(RunDir(run).manifest, dict(clip='gone', source='x', status='discarded', reason='no_face'))
    save_generator(G, run/'generator'/'generator.safetensors')
    return run

def _log(run): return read_jsonl(inv.invert_log(run))

def test_run_kill_and_resume(run, lpips, monkeypatch):
    cfg = _cfg(**EQ, **{'invert.batch_clips': 1})
    calls, real_save = [], inv.save_tensors
    def dying_save(path, *a, **k):
        calls.append(path)
        if len(calls) == 2: raise KeyboardInterrupt          # killed while writing the second clip
        return real_save(path, *a, **k)
    monkeypatch.setattr(inv, 'save_tensors', dying_save)
    with pytest.raises(KeyboardInterrupt): inv.invert_run(run, cfg, progress=False, lpips=lpips)
    rd = RunDir(run)
    assert [p.name for p in sorted((run/'latents').glob('*.safetensors'))] == ['c0.safetensors']
    (run/'latents'/'.c1.safetensors.abc123.safetensors.tmp').write_bytes(b'half a file')     # a torn temp file
    stamp = rd.latents('c0').stat().st_mtime_ns
    monkeypatch.setattr(inv, 'save_tensors', real_save)
    r = inv.invert_run(run, cfg, progress=False, lpips=lpips)
    assert r['skipped'] == ['c0'] and sorted(r['inverted']) == ['c1', 'c2', 'c3'] and r['failed'] == {}
    assert rd.latents('c0').stat().st_mtime_ns == stamp
    assert not list((run/'latents').glob('.*tmp'))
    for cid, n in (('c0', 1), ('c1', 3), ('c2', 2), ('c3', 4)):
        t, meta = load_tensors(rd.latents(cid))
        assert t['ws'].shape == (n, 6, 32) and t['lpips'].shape == (n,) and meta['frames'] == n
    again = inv.invert_run(run, cfg, progress=False, lpips=lpips)
    assert sorted(again['skipped']) == ['c0', 'c1', 'c2', 'c3'] and again['inverted'] == []
    assert sorted(row['clip'] for row in _log(run) if row['status'] == 'done') == ['c0', 'c1', 'c2', 'c3']

@pytest.mark.parametrize('opt', OPTS)
@pytest.mark.parametrize('warm', ['previous', 'first'])
def test_run_checkpoint_resume_equals_whole_run(run, tmp_path, G, clips, lpips, warm, opt):
    "A run stopped mid-batch (a kill) and run again gives the latents of a run never stopped (item 5 of #15); 'first': mid-frames."
    cfg = _cfg(**{**EQ, 'invert.steps_next': 2, 'invert.batch_clips': 2, 'invert.checkpoint_s': 1e-9, 'invert.warm_start': warm,
                  'invert.optimizer': opt})
    whole = tmp_path/'whole'; shutil.copytree(run, whole)
    inv.invert_run(whole, cfg, progress=False, lpips=lpips)
    stop = 4 if warm == 'first' else 6                 # 'first': frame 0 of c0 and c1 take steps 1-3, then c1's frames 1, 2
    with pytest.raises(KeyboardInterrupt): inv.invert_run(run, cfg, progress=False, lpips=lpips, stop_after_steps=stop)
    assert (run/'latents'/'.inflight.pt').exists()
    st = torch.load(run/'latents'/'.inflight.pt', weights_only=True)             # no code runs from it
    assert st['B'] == 2 and any(s is not None and s['f'] + s['s'] > 0 for s in st['slots'])
    if warm == 'first':                                                           # two frames of c1 side by side, 1 step in
        assert [(s['cid'], s['f'], s['s']) for s in st['slots']] == [('c1', 1, 1), ('c1', 2, 1)], st['slots']
    r = inv.invert_run(run, cfg, progress=False, lpips=lpips)
    assert not (run/'latents'/'.inflight.pt').exists() and not list((run/'latents').glob('.*tmp*'))
    assert sorted(r['inverted'] + r['skipped']) == sorted(clips)
    for cid in clips:
        a, b = load_tensors(RunDir(run).latents(cid))[0], load_tensors(RunDir(whole).latents(cid))[0]
        for k in ('ws', 'mse', 'lpips'): assert (a[k] - b[k]).abs().max() <= 1e-6, (cid, k)

def test_checkpoint_of_other_settings_is_ignored(tmp_path, G, clips, lpips):
    ck = tmp_path/'.inflight.pt'
    cfg = _cfg(**EQ, **{'invert.checkpoint_s': 1e-9})
    with pytest.raises(KeyboardInterrupt): list(inv.invert_clips(G, clips, cfg, lpips, batch_size=2, checkpoint=ck, stop_after_steps=3))
    other = _cfg(**{**EQ, 'invert.steps_next': 2, 'invert.checkpoint_s': 1e-9})
    fresh = dict(inv.invert_clips(G, clips, other, lpips, batch_size=2))
    resumed = dict(inv.invert_clips(G, clips, other, lpips, batch_size=2, checkpoint=ck))
    for cid in clips: assert torch.equal(fresh[cid]['ws'], resumed[cid]['ws'])
    ck.write_bytes(b'garbage')                                                      # a damaged one: start over
    assert sorted(dict(inv.invert_clips(G, clips, cfg, lpips, batch_size=2, checkpoint=ck))) == sorted(clips)

@pytest.mark.parametrize('opt', OPTS)
def test_oom_halves_the_batch(G, clips, lpips, singles, opt):
    "A fake CUDA out-of-memory above 2 images per synthesis call: the batch of 4 halves, every clip comes out right."
    class SmallGPU(torch.nn.Module):
        def __init__(self):
            super().__init__(); self.G, self.calls = G, []
            self.mapping, self.num_ws, self.w_dim, self.z_dim, self.img_resolution = G.mapping, G.num_ws, G.w_dim, G.z_dim, G.img_resolution
        def synthesis(self, ws, **kw):
            self.calls.append(len(ws))
            if len(ws) > 2: raise torch.cuda.OutOfMemoryError('fake')
            return self.G.synthesis(ws, **kw)
    g = SmallGPU()
    r = dict(inv.invert_clips(g, clips, _cfg(**EQ, **{'invert.optimizer': opt}), lpips, batch_size=4))
    assert max(g.calls) > 2 and sorted(r) == sorted(clips)
    for cid in clips: assert r[cid]['error'] is None; assert_same_inversion(G, r[cid], singles[opt][cid])

def test_run_records_bad_clip(run, lpips):
    (RunDir(run).clip_dir('c2')/'frames.mp4').unlink()
    r = inv.invert_run(run, _cfg(**EQ), progress=False, lpips=lpips)
    assert list(r['failed']) == ['c2'] and 'frames.mp4 missing' in r['failed']['c2']
    assert sorted(r['inverted']) == ['c0', 'c1', 'c3']
    err = json.loads((run/'latents'/'c2.error.json').read_text())
    assert err['clip'] == 'c2' and 'cannot load frames' in err['error']
    assert [row['status'] for row in _log(run) if row['clip'] == 'c2'] == ['error']

def test_run_report_and_figure(run, lpips):
    cfg = _cfg(**EQ)
    inv.invert_run(run, cfg, progress=False, lpips=lpips)
    rep = inv.inversion_report(run, cfg, lpips=lpips)
    lat = [load_tensors(RunDir(run).latents(c))[0] for c in ('c0', 'c1', 'c2', 'c3')]
    assert rep['clips'] == 4 and rep['frames'] == 10
    assert abs(rep['lpips_mean'] - float(torch.cat([t['lpips'] for t in lat]).mean())) < 1e-4
    assert abs(rep['lpips_frame0'] - float(torch.stack([t['lpips'][0] for t in lat]).mean())) < 1e-4
    assert rep['beats_w_avg'] == (rep['lpips_mean'] < rep['w_avg_lpips']) and rep['w_avg_lpips'] > 0
    inv.plot_inversion(run, cfg=cfg, n_frames=2)
    assert (run/'figures'/'fig2_inversion.png').stat().st_size > 1000

def test_run_missing_inputs(tmp_path, lpips):
    with pytest.raises(MissingStageOutputError, match='no kept clips'): inv.invert_run(tmp_path, _cfg(), progress=False)
    append_jsonl(RunDir(tmp_path).manifest, dict(clip='a', status='kept'))
    with pytest.raises(BadInputError, match="clips/a: missing, though manifest.jsonl lists clip 'a' as kept"): inv.invert_run(tmp_path, _cfg(), progress=False)
    atomic_write_json(RunDir(tmp_path).clip_dir('a')/'meta.json', dict(frames=1))
    with pytest.raises(MissingStageOutputError, match='a2v fit-generator'): inv.invert_run(tmp_path, _cfg(), progress=False)

WORKER = '''
import json, os, sys, torch
torch.set_num_threads(1)
from a2v.core import get_config
from a2v.invert import invert_run
run = sys.argv[1]
cfg = get_config('tiny', **{OVR!r})
r = invert_run(run, cfg, progress=False)
open(os.path.join(run, f"summary{{os.environ['RANK']}}.json"), 'w').write(json.dumps(r))
'''

def test_torchrun_two_ranks(run):
    "torchrun with 2 CPU processes (gloo): every clip is inverted exactly once, and each rank reports the whole run."
    (run/'worker.py').write_text(WORKER.format(OVR={**OVR, **EQ}))
    env = dict(os.environ, OMP_NUM_THREADS='1', A2V_DEVICE='cpu')
    p = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                        str(run/'worker.py'), str(run)], env=env, capture_output=True, text=True, timeout=170)
    assert p.returncode == 0, p.stdout[-1500:] + p.stderr[:3000]
    done = [row for row in _log(run) if row['status'] == 'done']
    assert sorted(row['clip'] for row in done) == ['c0', 'c1', 'c2', 'c3']          # once each
    assert {row['rank'] for row in done} == {0, 1}
    for rank in (0, 1):
        s = json.loads((run/f'summary{rank}.json').read_text())
        assert sorted(s['inverted']) == ['c0', 'c1', 'c2', 'c3'] and s['world_size'] == 2
    for cid in ('c0', 'c1', 'c2', 'c3'): assert inv._latents_done(RunDir(run).latents(cid))

def test_workers_share_the_clips(run, tmp_path, G, lpips):
    "invert.workers=2: two CPU processes each invert their part of the clips (each clip once) as one process would."
    cfg = _cfg(**EQ, **{'invert.workers': 2})
    one = tmp_path/'one'; shutil.copytree(run, one)
    inv.invert_run(one, cfg, progress=False, workers=1)
    r = inv.invert_run(run, cfg, progress=False)
    assert r['workers'] == 2 and sorted(r['inverted']) == ['c0', 'c1', 'c2', 'c3'] and r['failed'] == {} and r['frames'] == 10
    rows = [x for x in _log(run) if x['status'] == 'done']
    assert sorted(x['clip'] for x in rows) == ['c0', 'c1', 'c2', 'c3'] and {x['rank'] for x in rows} == {0, 1}
    for cid in ('c0', 'c1', 'c2', 'c3'):
        a, b = load_tensors(RunDir(run).latents(cid))[0], load_tensors(RunDir(one).latents(cid))[0]
        assert_same_inversion(G, a, b)
    assert not list((run/'latents').glob('.inflight*'))
    assert inv.invert_run(run, cfg, progress=False)['inverted'] == []                 # resume: nothing left, no process started

def test_workers_kill_and_resume(run, tmp_path):
    "Killed mid-batch, each worker leaves its own checkpoint; the run resumed gives the latents of a run never stopped."
    cfg = _cfg(**EQ, **{'invert.workers': 2, 'invert.checkpoint_s': 1e-9})
    whole = tmp_path/'whole'; shutil.copytree(run, whole)
    inv.invert_run(whole, cfg, progress=False)
    with pytest.raises(KeyboardInterrupt): inv.invert_run(run, cfg, progress=False, stop_after_steps=2)
    assert sorted(p.name for p in (run/'latents').glob('.inflight*')) == ['.inflight-w0.pt', '.inflight-w1.pt']
    assert not list((run/'latents').glob('*.safetensors'))
    inv.invert_run(run, cfg, progress=False)
    assert not list((run/'latents').glob('.inflight*'))
    for cid in ('c0', 'c1', 'c2', 'c3'):
        a, b = load_tensors(RunDir(run).latents(cid))[0], load_tensors(RunDir(whole).latents(cid))[0]
        for k in ('ws', 'mse', 'lpips'): assert (a[k] - b[k]).abs().max() <= 1e-6, (cid, k)

def test_worker_error_is_one_line(run):
    "A worker that cannot start (its generator file is gone) stops the run with the error one process would raise."
    (run/'generator'/'generator.safetensors').unlink()
    with pytest.raises(MissingStageOutputError, match=r'generator\.safetensors: missing generator') as e:
        inv.invert_run(run, _cfg(**EQ, **{'invert.workers': 2}), progress=False)
    with pytest.raises(MissingStageOutputError) as one: inv.invert_run(run, _cfg(**EQ), progress=False, workers=1)
    assert str(e.value) == str(one.value) and '\n' not in str(e.value)

def test_photo_workers_invert_each_photo_alone(G, lpips, clips):
    "invert_images(workers=n): the photos are dealt to n processes; with one photo each, every code is the photo inverted alone."
    cfg = _cfg(**EQ)
    photos = [clips['c0'][0], clips['c1'][1], clips['c3'][2]]
    par = inv.invert_images(G, photos, cfg, lpips, names=['p', 'q', 'r'], workers=3)
    for x, n, (w, losses) in zip(photos, 'pqr', par):
        w1, l1 = inv.invert_image(G, x, cfg, lpips, seed_name=n)
        assert w.shape == (G.num_ws, G.w_dim) and losses.shape == (EQ['invert.steps_first'],)
        assert (w - w1).abs().max() < 1e-4 and (losses - l1).abs().max() < 1e-4
    two = inv.invert_images(G, photos, cfg, lpips, names=['p', 'q', 'r'], workers=2)       # [p, r] batched, q alone
    one = inv.invert_images(G, photos, cfg, lpips, names=['p', 'q', 'r'])
    for (w2, l2), (w, l) in zip(two, one): assert (w2 - w).abs().max() < 1e-4 and (l2 - l).abs().max() < 1e-4

def test_photo_worker_error_is_one_line(G, lpips):
    "A photo whose loss turns non-finite in a worker raises the same one-line A2VError as in this process."
    bad = torch.full((3, G.img_resolution, G.img_resolution), float('nan'))
    ok = torch.zeros(3, G.img_resolution, G.img_resolution)
    with pytest.raises(A2VError) as one: inv.invert_images(G, [ok, bad], _cfg(**EQ), lpips, names=['ok', 'bad'])
    with pytest.raises(A2VError) as par: inv.invert_images(G, [ok, bad], _cfg(**EQ), lpips, names=['ok', 'bad'], workers=2)
    assert str(par.value) == str(one.value) and 'bad' in str(par.value) and '\n' not in str(par.value)
