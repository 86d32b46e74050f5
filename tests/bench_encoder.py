"""Encoder starts against optimisation (#32, §4.2): what the inversion costs with and without ReStyle-pSp.

Tiny rows (the shipped encoder and generator, on the held-out clips of a demo run: `$A2V_BENCH_RUN`, default
runs/demo; without one they say so): seconds per frame and PSNR of the preset's inversion, of the encoder alone, and
of the encoder followed by k L-BFGS steps per frame, all measured in this run, so the ratio to the preset's
inversion is meaningful on a shared machine.

Paper-shape rows (R-256 layout with random weights, and the paper-size IR-SE-50 encoder): seconds for one encoder
start (5 refinement steps: 5 encoder passes and 6 syntheses) against one Adam step of eq. 1, on this device, and the
expected seconds per 125-frame clip for the paper's schedule (1000 + 5·124 = 1620 steps) against an encoder start of
every frame plus k steps, at batch B (arithmetic in the rows' notes). On a GPU the same file measures the same rows
there (`make bench` on a lent machine, or `python tests/bench_encoder.py`)."""
import os, time
from pathlib import Path
import torch

CLIP = 125                        # frames of a 5-s clip at 25 fps
PAPER_STEPS = 1000 + 5 * (CLIP - 1)

def _tiny_rows(rows):
    from a2v.core import RunDir, get_config
    from a2v.invert import compare_starts, heldout_clips, frames_to_tensor, _load_frames, run_encoder, load_run_generator
    run = Path(os.environ.get('A2V_BENCH_RUN', 'runs/demo'))
    if not (run/'manifest.jsonl').exists():
        rows.append(dict(what='encoder, tiny: demo run', value='absent', unit='', note=f'make demo first (or set A2V_BENCH_RUN); looked in {run}'))
        return
    rd = RunDir(run); cfg = get_config('tiny')
    G = load_run_generator(run, cfg); E = run_encoder(run, cfg, G)
    ids = heldout_clips(run)
    frames = {c: frames_to_tensor(_load_frames(rd, c), G.img_resolution) for c in ids}
    res = compare_starts(G, frames, cfg, E, ks=(1, 2, 4))
    base = res['rows']['optimisation only (preset)']
    for name, r in res['rows'].items():
        rows.append(dict(what=f'encoder, tiny ({len(ids)} held-out clips, {res["frames"]} frames): {name}', value=round(r['psnr'], 2), unit='dB PSNR',
                         note=f"{1000 * r['seconds_per_frame']:.1f} ms/frame = {r['seconds_per_frame'] / base['seconds_per_frame']:.2f}× the preset's; "
                              f"LPIPS-{res['lpips_net']} {r['lpips']:.3f}; temporal {r['temporal']:.2f}"))

def _paper_rows(rows, dev):
    from a2v.stylegan3 import Generator, R256_ARCH
    from a2v.encoder import ReStylePSP, encode
    from a2v.invert import BatchAdam
    torch.manual_seed(0)
    G = Generator(**R256_ARCH).to(dev).eval().requires_grad_(False)
    E = ReStylePSP().to(dev).eval().requires_grad_(False)
    E.latent_avg.copy_(G.mapping.w_avg.expand(G.num_ws, -1))
    B = 8 if dev.type == 'cuda' else 1
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    with torch.no_grad(): x = G.synthesis(G.mapping(torch.randn(B, G.z_dim, device=dev)), noise_mode='const')
    def timed(fn, reps):
        fn(); sync(); t = time.perf_counter()
        for _ in range(reps): fn()
        sync(); return (time.perf_counter() - t) / reps
    reps = 3 if dev.type == 'cuda' else 1
    t_enc = timed(lambda: encode(E, G, x, 5), reps)
    w = G.mapping.w_avg.expand(B, G.num_ws, -1).clone(); opt = BatchAdam(w.shape, dev); rows_ = torch.arange(B, device=dev)
    def step():
        wg = w.detach().requires_grad_(True)
        loss = (G.synthesis(wg, noise_mode='const') - x).square().mean((1, 2, 3))
        loss.sum().backward(); opt.step(w, wg.grad, rows_, torch.full((B,), 0.01, device=dev))
    t_step = timed(step, reps)
    where = torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'CPU'
    rows.append(dict(what=f'encoder, paper shapes on {where}: one encoder start (5 refinement steps), batch {B}', value=round(t_enc / B, 3), unit='s/frame'))
    rows.append(dict(what=f'encoder, paper shapes on {where}: one Adam step of eq. 1 (MSE), batch {B}', value=round(t_step / B, 3), unit='s/frame'))
    rows.append(dict(what=f"encoder, paper shapes on {where}: 1000 Adam steps (frame 0's schedule)", value=round(1000 * t_step / B, 1), unit='s/frame',
                     note=f'= 1000 × {t_step / B:.3f} s'))
    for k in (0, 5):
        per_clip = CLIP * (t_enc + k * t_step) / B
        rows.append(dict(what=f'encoder, paper shapes on {where}: 125-frame clip, encoder start + {k} steps per frame', value=round(per_clip, 1),
                         unit='s/clip', note=f'125 × ({t_enc / B:.3f} + {k} × {t_step / B:.3f}) s'))
    rows.append(dict(what=f"encoder, paper shapes on {where}: 125-frame clip, the paper's schedule", value=round(PAPER_STEPS * t_step / B, 1),
                     unit='s/clip', note=f'{PAPER_STEPS} steps × {t_step / B:.3f} s (clips batched {B} at a time)'))

def _worker_rows(rows):
    "One held-out clip of the demo run inverted from encoder starts (2 steps per frame) by 1 process, then by 2 sharing its frames."
    import shutil, tempfile
    from a2v.core import RunDir, get_config
    from a2v.invert import heldout_clips, invert_run
    run = Path(os.environ.get('A2V_BENCH_RUN', 'runs/demo'))
    if not (run/'manifest.jsonl').exists(): return
    cid = heldout_clips(run)[0]
    cfg = get_config('tiny', **{'invert.warm_start': 'encoder', 'invert.steps_next': 2})
    with tempfile.TemporaryDirectory() as d:
        secs = {}
        for n in (1, 2):
            r = Path(d)/f'w{n}'
            shutil.copytree(run, r, ignore=lambda p, names: [x for x in names if Path(p) == run and x not in ('clips', 'manifest.jsonl', 'generator', 'config.json')])
            t = time.perf_counter(); out = invert_run(r, cfg, clip_ids=[cid], workers=n, progress=False); secs[n] = time.perf_counter() - t
        rows.append(dict(what=f'encoder, tiny: one {out["frames"]}-frame clip from encoder starts + 2 steps, 1 process', value=round(secs[1], 1), unit='s'))
        rows.append(dict(what=f'encoder, tiny: the same clip, 2 processes sharing its frames (clip_pieces)', value=round(secs[2], 1), unit='s',
                         note=f'{secs[1] / secs[2]:.2f}× faster (worker start-up included)'))

def bench() -> list[dict]:
    rows = []
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    if dev.type == 'cpu': _tiny_rows(rows); _worker_rows(rows)
    _paper_rows(rows, dev)
    return rows

if __name__ == '__main__':
    for r in bench(): print(f"{r['what']:100s} {r['value']!s:>10} {r.get('unit', '')}" + (f"   ({r['note']})" if r.get('note') else ''))
