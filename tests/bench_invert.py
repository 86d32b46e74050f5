"""Inversion throughput on CPU: ms per optimisation step and frames/s at batch 1/8/32 (tiny) and 1 (256 px R), and the
tiny step in one process with n threads against n processes with one thread each (`invert.workers`).

The 256 px R architecture at batch 8 takes several minutes per step on 2 CPU cores: `bench(full=True)` or
`A2V_BENCH_FULL=1` adds it."""
import os, subprocess, sys, time
import torch

def _engine_seconds(G, lpips, cfg, batch:int, n_frames:int) -> float:
    "Wall time of `invert_clips` on `batch` clips of `n_frames` frames each, all in one batch."
    from a2v.invert import invert_clips
    with torch.no_grad():
        z = torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(0)).to(G.mapping.w_avg.device)
        x = G.synthesis(G.mapping(z), noise_mode='const').clamp(-1, 1)            # (batch, 3, H, W)
    clips = {str(i): x[i:i + 1].expand(n_frames, -1, -1, -1) for i in range(batch)}
    t = time.perf_counter()
    for _ in invert_clips(G, clips, cfg, lpips, batch_size=batch): pass
    return time.perf_counter() - t

def _rows(name, G, lpips, net, batches, steps, warmup=True):
    from a2v.core import get_config
    rows = []
    for b in batches:
        base = get_config('tiny', **{'invert.steps_first': 0, 'invert.steps_next': 0, 'invert.lpips_net': net})
        run = get_config('tiny', **{'invert.steps_first': steps, 'invert.steps_next': 0, 'invert.lpips_net': net})
        if warmup: _engine_seconds(G, lpips, run, b, 1)    # first calls of a shape pay for allocation and set-up
        reps = 2 if warmup else 1                         # the best of `reps` runs: the CPU is often shared
        t0 = min(_engine_seconds(G, lpips, base, b, 1) for _ in range(reps))   # start codes + the measurement pass only
        t1 = min(_engine_seconds(G, lpips, run, b, 1) for _ in range(reps))
        ms = 1000 * (t1 - t0) / steps                      # one batched step: synthesis fwd+bwd, LPIPS, Adam
        rows.append(dict(what=f'invert {name}, batch {b}: one optimisation step', value=float(f'{ms:.4g}'), unit='ms/step'))
        # a later frame costs steps_next (5) steps plus one no-grad measurement pass (≈ t0: start codes are cheap)
        rows.append(dict(what=f'invert {name}, batch {b}: frames after the first (5 steps + measurement)',
                         value=float(f'{b / (5 * ms / 1000 + t0):.3g}'), unit='frames/s'))
    return rows

_STEP = """
import sys, time, torch
from a2v.core import get_config
from a2v.stylegan3 import Generator
torch.set_num_threads(int(sys.argv[1])); torch.manual_seed(0)
G = Generator(**get_config('tiny').generator.arch).eval().requires_grad_(False)
B = 8; w = G.mapping.w_avg.expand(B, G.num_ws, -1).clone(); x = torch.zeros(B, 3, G.img_resolution, G.img_resolution)
def step():
    v = w.detach().requires_grad_(True); ((G.synthesis(v, noise_mode='const') - x) ** 2).mean((1, 2, 3)).sum().backward()
for _ in range(3): step()
t, n = time.perf_counter(), 0
while time.perf_counter() - t < float(sys.argv[2]): step(); n += 1
print(1000 * (time.perf_counter() - t) / n / B)
"""

def _ms_per_image(threads:int, procs:int, seconds:float=10) -> list[float]:
    "ms per image of a tiny batch-8 inversion step (synthesis fwd+bwd, MSE) in each of `procs` processes run side by side."
    ps = [subprocess.Popen([sys.executable, '-c', _STEP, str(threads), str(seconds)], stdout=subprocess.PIPE, text=True)
          for _ in range(procs)]
    return [float(p.communicate()[0].split()[-1]) for p in ps]

def _worker_rows() -> list[dict]:
    "One process with n threads against n processes with one thread each (n: `invert.workers='auto'`), same run."
    from a2v.core import cpu_cores
    n = min(cpu_cores(), 8)
    if n < 2: return []
    one = _ms_per_image(n, 1)[0]
    many = _ms_per_image(1, n)
    per_machine = 1 / sum(1 / m for m in many)                  # the images all processes finish per second, inverted
    return [dict(what=f'invert tiny, batch 8: 1 process x {n} threads', value=round(one, 1), unit='ms/image'),
            dict(what=f'invert tiny, batch 8: {n} processes x 1 thread, side by side', value=round(per_machine, 1), unit='ms/image',
                 note=f'each process {min(many):.0f}-{max(many):.0f} ms/image; {per_machine / one:.2f}x the time of one process')]

def bench(full:bool=bool(os.environ.get('A2V_BENCH_FULL'))) -> list[dict]:
    from a2v.core import get_config
    from a2v.stylegan3 import Generator
    from a2v.lpips import get_lpips
    torch.set_num_threads(2); torch.manual_seed(0)
    rows = []
    G = Generator(**get_config('tiny').generator.arch).eval().requires_grad_(False)
    rows += _rows('tiny 64 px (alex)', G, get_lpips('alex', device='cpu'), 'alex', (1, 8, 32), steps=5)
    rows += _worker_rows()
    try: from a2v.stylegan3 import R256_ARCH as arch
    except ImportError:
        arch = dict(z_dim=512, w_dim=512, img_resolution=256, channel_base=32768, channel_max=1024, conv_kernel=1,
                    use_radial_filters=True)
    G = Generator(**arch).eval().requires_grad_(False)
    try: lp, net = get_lpips('vgg', device='cpu', fetch=False), 'vgg'
    except Exception: lp, net = get_lpips('alex', device='cpu'), 'alex'
    rows += _rows(f'R 256 px random init ({net})', G, lp, net, (1, 8) if full else (1,), steps=1, warmup=False)
    return rows

if __name__ == '__main__':
    for r in bench(): print(f"{r['what']:75s} {r['value']:>10} {r['unit']}", flush=True)
