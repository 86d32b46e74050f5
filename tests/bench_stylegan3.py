"""Speed of a2v.stylegan3 synthesis (forward, and forward+backward to ws = one inversion step), against NVIDIA's
reference path when a checkout of NVlabs/stylegan3 is named by $A2V_SG3_REF (optional; absent in CI).

`bench()` returns rows {'what', 'value', 'unit'} and prints nothing. Configs: the official R-256 architecture
(random init) and the tiny preset's generator. NVIDIA's CPU path gains nothing from batching (FACTS.md), so for
R-256 it is timed at batch 1 only and compared per image. The whole bench takes about 2-3 minutes on 2 cores
(R-256 at batch 8 dominates); `A2V_BENCH_QUICK=1` times the tiny generator only.
"""
import importlib.util, logging, os, time
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

def _nvidia_kwargs(arch:dict) -> dict:
    kw = {k: v for k, v in arch.items() if k not in ('mapping_layers',)}
    kw['mapping_kwargs'] = dict(num_layers=arch.get('mapping_layers', 2))
    kw.setdefault('c_dim', 0)
    return kw

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
    rows.append(dict(what='stylegan3 bench threads', value=torch.get_num_threads(), unit='threads'))
    return rows

if __name__ == '__main__':
    for r in bench(): print(f"{r['what']:60s} {r['value']:>10} {r['unit']}")
