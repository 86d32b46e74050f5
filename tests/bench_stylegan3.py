"""Speed of a2v.stylegan3 synthesis (forward, and forward+backward to ws = one inversion step), against NVIDIA's
reference path when a checkout of NVlabs/stylegan3 is named by $A2V_SG3_REF (optional; absent in CI).

`bench()` returns rows {'what', 'value', 'unit'} and prints nothing. Configs: the official R-256 architecture
(random init) and the tiny preset's generator. NVIDIA's CPU path gains nothing from batching (measured on these machines), so for
R-256 it is timed at batch 1 only and compared per image. The whole bench takes about 2-3 minutes on 2 cores
(R-256 at batch 8 dominates); `A2V_BENCH_QUICK=1` times the tiny generator only.

The filtered leaky ReLU rows compare a2v's two paths (`impl='reference'`: upsampled activations kept by autograd;
`impl='auto'`, the default: the fused tiled op, which keeps only its input, in every layer with a down filter):
fwd+bwd to ws, R-256 at batch 1 and the tiny generator at batch 8 (its lrelu_upsampling=1 leaves no layer with a down
filter, so there both paths run the same code: the rows show the noise floor), each measured in a fresh subprocess (wall-clock time of one step, and the increase of peak RSS during
it, `ru_maxrss`; torch's CPU allocations are invisible to tracemalloc). The two paths alternate, `A2V_BENCH_REPEAT`
times (default 2), and the rows give the median and the spread (min–max) of the same run. About 2-3 more minutes.

Measured (random init, CPU time on one thread, same machine and run, 2026-11-25): R-256 synthesis at batch 1 took
7.4 s forward and 12.4 s forward+backward (one inversion step), against 18.3 s and 47.2 s for NVIDIA's reference
path (2.5× and 3.8× faster); the tiny generator 15 ms / 39 ms against 29 ms / 78 ms. Wall-clock on 2 threads
(`make bench`): R-256 at batch 1, 4.0 s / 8.4 s against NVIDIA's 11.2 s / 66.8 s (2.8× / 7.9×).
2026-12-01, one thread, 3 alternating fresh-process runs: R-256 fwd+bwd reference path 31.0 s (22.8–49.8), fused op
23.5 s (20.2–46.5), ratio 0.89× (0.76–0.93); peak RSS 3775 MB against 1124 MB (0.30×).
2026-12-01, after the plain layers became one op (`_ModConvLReLU`), `A2V_BENCH_QUICK=1`, 2 threads: tiny generator
fwd+bwd 50.6 ms per image at batch 8 and 64.2 ms at batch 1 against NVIDIA's 112.8 / 200.1 ms (0.45× / 0.32×); our
reference path 61.5 ms at batch 8, the default 46.5 ms (0.76×, same-run pairs 0.72–0.79).
"""
import importlib.util, json, logging, os, statistics, subprocess, sys, time
from pathlib import Path
import torch

def _time(fn, reps:int) -> float:
    "Best wall-clock seconds of `reps` calls, after one warm-up call when reps > 1."
    if reps > 1: fn()
    best = float('inf')
    for _ in range(reps):
        t = time.perf_counter(); fn(); best = min(best, time.perf_counter() - t)
    return best

def _step(G, ws, bwd:bool):
    if not bwd:
        with torch.no_grad(): return G.synthesis(ws, noise_mode='const')
    w = ws.detach().requires_grad_(True)
    G.synthesis(w, noise_mode='const').square().mean().backward()

def _reference():
    root = os.environ.get('A2V_SG3_REF')
    if not root or not Path(root, 'training', 'networks_stylegan3.py').exists(): return None
    logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
    spec = importlib.util.spec_from_file_location('_sg3_fixtures', Path(__file__).parent/'fixtures'/'stylegan3'/'make_fixtures.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod.import_reference(root)

def _nvidia_kwargs(arch) -> dict:
    "NVIDIA's Generator keywords from our arch (a dict, or the tiny preset's GeneratorArch)."
    kw = {k: arch[k] for k in arch.keys()}
    kw['mapping_kwargs'] = dict(num_layers=kw.pop('mapping_layers', 2))
    kw.setdefault('c_dim', 0)
    return kw

_STEP = r'''
import json, resource, sys, time, torch
from a2v.core import get_config
from a2v.stylegan3 import Generator, R256_ARCH, set_filtered_lrelu_impl
name, impl, B, threads, reps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
torch.set_num_threads(threads)
torch.manual_seed(0)
G = Generator(**(R256_ARCH if name == 'R-256' else get_config('tiny').generator.arch)).eval().requires_grad_(False)
set_filtered_lrelu_impl(G, impl)
ws = G.mapping(torch.randn(B, G.z_dim)).detach()
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
best = float('inf')
for _ in range(reps):
    w = ws.clone().requires_grad_(True)
    t = time.perf_counter(); G.synthesis(w, noise_mode='const').square().mean().backward()
    best = min(best, time.perf_counter() - t)
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(s=best, peak_mb=(rss1 - rss0) / 1024, grad=float(w.grad.abs().sum()))))
'''

def _fused_step(name:str, impl:str, B:int, reps:int) -> dict:
    "One fwd+bwd measurement in a fresh process: {'s': best seconds of `reps` steps, 'peak_mb': peak RSS increase}."
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(root), os.environ.get('PYTHONPATH', '')])}
    p = subprocess.run([sys.executable, '-c', _STEP, name, impl, str(B), str(torch.get_num_threads()), str(reps)],
                       capture_output=True, text=True, env=env, cwd=root, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])

def _spread(v:list, nd:int=1) -> str: return f"{min(v):.{nd}f}-{max(v):.{nd}f}"

def bench_fused() -> list[dict]:
    "Rows: fused filtered leaky ReLU vs the reference path, fwd+bwd to ws (time, peak memory, same-run ratios)."
    rows, n = [], int(os.environ.get('A2V_BENCH_REPEAT', 2))
    plans = [('tiny 64px', 8, 3), ('R-256', 1, 1)]
    if os.environ.get('A2V_BENCH_QUICK'): plans = plans[:1]
    for name, B, reps in plans:
        m = {'reference': [], 'auto': []}
        for _ in range(n):
            for impl in m: m[impl].append(_fused_step('R-256' if name == 'R-256' else 'tiny', impl, B, reps))
        what = f'stylegan3 {name} fwd+bwd B={B}'
        for impl, label in (('reference', 'reference path'), ('auto', 'default (fused op)')):
            t = [r['s'] * 1000 / B for r in m[impl]]; mb = [r['peak_mb'] for r in m[impl]]
            rows.append(dict(what=f'{what} {label}', value=round(statistics.median(t), 1), unit='ms/image',
                             note=f'spread {_spread(t)} over {n} runs'))
            rows.append(dict(what=f'{what} {label} peak RSS increase', value=round(statistics.median(mb)), unit='MB',
                             note=f'spread {_spread(mb, 0)}'))
        tr = [a['s'] / b['s'] for a, b in zip(m['auto'], m['reference'])]
        mr = [a['peak_mb'] / b['peak_mb'] for a, b in zip(m['auto'], m['reference']) if b['peak_mb'] > 0]   # 0: below RSS noise
        rows.append(dict(what=f'{what} fused/reference time', value=round(statistics.median(tr), 2), unit='x',
                         note=f'same-run pairs, spread {_spread(tr, 2)}'))
        if mr: rows.append(dict(what=f'{what} fused/reference peak memory', value=round(statistics.median(mr), 2), unit='x',
                                note=f'same-run pairs, spread {_spread(mr, 2)}'))
    return rows

def bench() -> list[dict]:
    from a2v.core import get_config
    from a2v.stylegan3 import Generator, R256_ARCH
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ref = _reference()
    rows = []
    # (name, arch, batches, repetitions, batches also timed for NVIDIA, batches also timed with backward)
    plans = [('tiny 64px', get_config('tiny').generator.arch, (1, 8), 3, (1, 8), (1, 8)),
             ('R-256', R256_ARCH, (1, 8), 1, (1,), (1,))]    # R-256 fwd+bwd at batch 8 needs > 16 GB on the CPU
    if os.environ.get('A2V_BENCH_QUICK'): plans = plans[:1]         # tiny only (seconds)
    if os.environ.get('A2V_BENCH_ONLY'): plans = [p for p in plans if p[0] == os.environ['A2V_BENCH_ONLY']]
    for name, arch, batches, reps, ref_batches, bwd_batches in plans:
        torch.manual_seed(0)
        G = Generator(**arch).eval().requires_grad_(False)
        G_ref = None
        if ref is not None:
            G_ref = ref.Generator(**_nvidia_kwargs(arch)).eval().requires_grad_(False)
            G.load_state_dict(G_ref.state_dict())
        for B in batches:
            ws = G.mapping(torch.randn(B, G.z_dim))
            for bwd in ((False, True) if B in bwd_batches else (False,)):
                what = f"stylegan3 {name} synthesis {'fwd+bwd' if bwd else 'fwd'} B={B}"
                ours = _time(lambda: _step(G, ws, bwd), reps) / B
                rows.append(dict(what=what + ' (a2v)', value=round(ours * 1000, 1), unit='ms/image'))
                if G_ref is not None and B in ref_batches:
                    theirs = _time(lambda: _step(G_ref, ws, bwd), reps) / B
                    rows.append(dict(what=what + ' (NVIDIA ref)', value=round(theirs * 1000, 1), unit='ms/image'))
                    rows.append(dict(what=what + ' speed-up', value=round(theirs / ours, 2), unit='x'))
    if not os.environ.get('A2V_BENCH_ONLY'): rows += bench_fused()
    rows.append(dict(what='stylegan3 bench threads', value=torch.get_num_threads(), unit='threads'))
    return rows

if __name__ == '__main__':
    for r in (bench_fused() if os.environ.get('A2V_BENCH_FUSED_ONLY') else bench()):
        print(f"{r['what']:66s} {r['value']!s:>10} {r['unit']}" + (f"   ({r['note']})" if r.get('note') else ''), flush=True)
