"""GPU speed of the 256 px R generator: synthesis forward and one inversion step at batch 1/8/32.

First, the filtered leaky ReLU paths (the table this script ends with): per R-256 inversion step (synthesis, MSE,
backward to w, Adam; fp32) at batch 1/8/32, a2v's reference path (`impl='reference'`: autograd keeps the upsampled
activations), the fused op with its Triton kernels (`impl='auto'` on CUDA: keeps only each op's input), and
`torch.compile` of the synthesis (it traces the reference path). Each gets ms/step, peak GPU memory (GiB) and seconds
per 125-frame clip with the paper's schedule (1000 steps for frame 0, 5 per later frame: 1620 steps; at batch B,
B clips inverted together, so seconds per clip = 1620 · step / B). Expected output, one line per measurement, then:

    | path | batch | ms/step | peak GiB | s per 125-frame clip |
    |---|---|---|---|---|
    | reference | 1 | ... | ... | ... |      (OOM where it does not fit: the reference path at batch 32 in fp32)
    | fused Triton | 1 | ... | ... | ... |
    | torch.compile (reference) | 1 | ... | ... | ... |
    ...

plus `fused vs reference` rows: max |image difference| and max |w-gradient difference| at batch 1 (expected ≤ 1e-4).

Variants of a2v's pure-PyTorch generator: fp32 (the default), TF32 matmuls/convolutions, bf16 and fp16 autocast, and
`torch.compile`; against NVIDIA's code with its CUDA kernels (fp16 in the top layers as the official pickles run, and
forced to fp32) when `$A2V_SG3_REF` names a checkout of NVlabs/stylegan3 (optional; never in CI). An inversion step is
what `a2v.invert` does per step: synthesis, MSE (+ 10·LPIPS-alex for the engine rows), backward to w, Adam. Also on
the GPU: our outputs against the committed NVIDIA fixtures, against NVIDIA's CUDA path, and the error bf16/fp16 cost.

Then the encoder rows of `bench_encoder.py` (#32): one ReStyle-pSp start of the R-256 layout against Adam steps, and
the seconds per 125-frame clip with and without it.

On a machine without CUDA `bench()` returns one row saying so. `A2V_BENCH_BUDGET_S` (default 290) bounds the run:
sections that would start after it are left out, and each row is also appended to `$A2V_BENCH_OUT` (JSON lines) as it
is measured, so a run cut short keeps what it measured. Channels-last needs no variant: every synthesis layer already
works in NHWC (see 07_stylegan3).

Measured on one NVIDIA H200 (torch 2.11 + CUDA 13, R-256 random init, 2026-11-26, before the fused op): outputs match
the committed NVIDIA fixtures to ≤ 2.6e-6. One inversion step (synthesis, MSE, backward to w, Adam):

    | batch | fp32 NHWC (first try) | fp32 NCHW (what runs now) | bf16 autocast | peak memory fp32 / bf16 |
    | 1     | 203 ms                | 98 ms                     | 90 ms         | 5.5 / 2.9 GiB           |
    | 8     | 1617 ms               | 749 ms                    | 685 ms        | 42.5 / 21.8 GiB         |
    | 32    | out of memory         | out of memory             | 2558 ms       | — / 86.5 GiB            |

Forward alone at batch 1: 95 ms NHWC, 34 ms NCHW. The NHWC step's profile was two cuDNN depthwise kernels (backward
data 37 %, grouped direct convolution 42 %), hence NCHW on the GPU. Half precision bought ~8 % (fp16 max error
4.8e-3 / 67.5 dB against fp32; bf16 3.9e-2 / 47.7 dB); TF32 nothing (1.89 s at batch 8, NHWC): depthwise filters,
not matrix products, take the time, and memory (the 2×-upsampled activations kept for backward) is the limit.
NVIDIA's CUDA extensions did not build with torch 2.11 / CUDA 13 there (`bias_act_plugin`); torch.compile of the tiny
generator on the CPU took 31 s and made the fp32 step slower (89 vs 56 ms).
"""
import contextlib, json, math, os, time
from pathlib import Path
import torch

_T0 = time.time()
def _left() -> float: return float(os.environ.get('A2V_BENCH_BUDGET_S', 290)) - (time.time() - _T0)
CLIP_STEPS = 1000 + 5 * 124        # the paper's inversion schedule for a 125-frame clip

def _emit(rows, **r):
    rows.append(r)
    print(f"{r['what']:70s} {r['value']!s:>10} {r.get('unit', '')}", flush=True)
    if os.environ.get('A2V_BENCH_OUT'):
        with open(os.environ['A2V_BENCH_OUT'], 'a') as f: f.write(json.dumps(r) + '\n')

def _cuda_ms(fn, reps:int=5, warmup:int=2) -> float:
    if os.environ.get('A2V_BENCH_DRY'): reps, warmup = 1, 1
    "Mean milliseconds of `fn()` on the GPU over `reps` calls after `warmup` calls."
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup): fn()
    sync(); t = time.perf_counter()
    for _ in range(reps): fn()
    sync()
    return (time.perf_counter() - t) * 1000 / reps

def _autocast(dtype):
    dev = 'cuda' if torch.cuda.is_available() else 'cpu'
    return torch.autocast(dev, dtype=dtype) if dtype is not None else contextlib.nullcontext()

@contextlib.contextmanager
def _tf32(on:bool):
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try: yield
    finally: torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old

def _fwd(synth, ws, dtype, **kw):
    with torch.no_grad(), _autocast(dtype): return synth(ws, noise_mode='const', **kw)

def _stepper(synth, ws0, target, dtype, lpips=None, **kw):
    w = ws0.clone().requires_grad_(True)
    opt = torch.optim.Adam([w], lr=0.01, betas=(0.9, 0.999))
    def step():
        with _autocast(dtype):
            img = synth(w, noise_mode='const', **kw).float()
            loss = (img - target).square().mean([1, 2, 3])
            if lpips is not None: loss = loss + 10 * lpips(img, target)
        opt.zero_grad(set_to_none=True); loss.sum().backward(); opt.step()
    return step

def _timed(rows, label, B, fwd, make_step) -> bool:
    "Rows for synthesis forward and one inversion step at batch B; False (and an 'OOM' row) when it does not fit."
    try:
        torch.cuda.reset_peak_memory_stats() if torch.cuda.is_available() else None
        _emit(rows, what=f'{label} synthesis fwd B={B}', value=round(_cuda_ms(fwd), 2), unit='ms')
        _emit(rows, what=f'{label} inversion step (MSE) B={B}', value=round(_cuda_ms(make_step()), 2), unit='ms/step')
        if torch.cuda.is_available():
            _emit(rows, what=f'{label} peak memory B={B}', value=round(torch.cuda.max_memory_allocated() / 2 ** 30, 1), unit='GiB')
        return True
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache(); _emit(rows, what=f'{label} B={B}', value='OOM', unit='')
        return False

def _fused_paths(rows, G, ws, tgt, batches, dev) -> list:
    "Rows and table lines: inversion step per filtered-lrelu path (reference, fused, torch.compile) and batch."
    from a2v.stylegan3 import set_filtered_lrelu_impl
    fused = 'fused Triton' if dev.type == 'cuda' else 'fused (tiled torch)'
    table = []
    # parity at batch 1: image and gradient to w, fused against the reference path
    out = {}
    for impl in ('reference', 'auto'):
        set_filtered_lrelu_impl(G, impl)
        w = ws[batches[0]].clone().requires_grad_(True)
        img = G.synthesis(w, noise_mode='const'); (img - tgt[batches[0]].flip(-1)).square().mean().backward()
        out[impl] = img.detach(), w.grad
    _emit(rows, what='fused vs reference B=1: max |image diff| / max |w-grad diff| (rel.)',
          value=f"{(out['auto'][0] - out['reference'][0]).abs().max():.1e}/"
                f"{((out['auto'][1] - out['reference'][1]).abs().max() / out['reference'][1].abs().max().clamp_min(1e-30)):.1e}", unit='')
    def measure(label, synth, B):
        if _left() < 45: return False
        try:
            if dev.type == 'cuda': torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
            ms = _cuda_ms(_stepper(synth, ws[B], tgt[B], None))
            gib = torch.cuda.max_memory_allocated() / 2 ** 30 if dev.type == 'cuda' else float('nan')
        except torch.OutOfMemoryError:
            torch.cuda.empty_cache(); _emit(rows, what=f'{label} inversion step B={B}', value='OOM', unit='')
            table.append(f'| {label} | {B} | OOM | — | — |'); return False
        clip = CLIP_STEPS * ms / 1000 / B
        _emit(rows, what=f'{label} inversion step B={B}', value=round(ms, 2), unit=f'ms/step, peak {gib:.1f} GiB, {clip:.0f} s/clip')
        table.append(f'| {label} | {B} | {ms:.1f} | {gib:.1f} | {clip:.0f} |'); return True
    for impl, label in (('reference', 'reference'), ('auto', fused)):
        set_filtered_lrelu_impl(G, impl)
        for B in batches:
            if not measure(label, G.synthesis, B): break
    if 'compile' not in os.environ.get('A2V_BENCH_SKIP', ''):
        import torch._dynamo as _dynamo
        _dynamo.config.recompile_limit = 64
        set_filtered_lrelu_impl(G, 'auto')                   # under torch.compile 'auto' traces the reference path
        try:
            synth = torch.compile(G.synthesis, dynamic=False)
            for B in batches:
                if _left() < 120: break
                t = time.time(); _stepper(synth, ws[B], tgt[B], None)()
                _emit(rows, what=f'torch.compile first step (compile) B={B}', value=round(time.time() - t, 1), unit='s')
                if not measure('torch.compile (reference)', synth, B): break
        except Exception as e: _emit(rows, what='torch.compile failed', value=type(e).__name__, unit=str(e)[:200])
    set_filtered_lrelu_impl(G, 'auto')
    return table

def _profile(rows, step, n:int=8):
    "The n GPU kernels that take longest in one call of `step`, as rows (total ms over the call)."
    from torch.profiler import profile, ProfilerActivity
    step(); torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof: step(); torch.cuda.synchronize()
    ev = [e for e in prof.key_averages() if getattr(e, 'device_type', None) is not None and 'CUDA' in str(e.device_type)]
    ev = sorted(ev, key=lambda e: -getattr(e, 'self_device_time_total', getattr(e, 'self_cuda_time_total', 0)))[:n]
    for e in ev:
        t = getattr(e, 'self_device_time_total', getattr(e, 'self_cuda_time_total', 0)) / 1000
        _emit(rows, what=f'  kernel {e.key[:58]}', value=round(t, 2), unit=f'ms in {e.count} calls')

def _nvidia(root):
    import importlib.util, logging
    logging.getLogger('torch.utils.cpp_extension').setLevel(logging.ERROR)
    spec = importlib.util.spec_from_file_location('_sg3_fixtures', Path(__file__).parent/'fixtures'/'stylegan3'/'make_fixtures.py')
    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
    return mod.import_reference(root)

def _nvidia_kwargs(arch:dict) -> dict:
    kw = {k: v for k, v in arch.items() if k != 'mapping_layers'}
    kw['mapping_kwargs'] = dict(num_layers=arch.get('mapping_layers', 2)); kw.setdefault('c_dim', 0)
    return kw

_BUILD = '''
import sys, time, types
try: import pkg_resources
except ImportError:
    from packaging.version import parse; sys.modules['pkg_resources'] = types.SimpleNamespace(parse_version=parse)
sys.path.insert(0, sys.argv[1])
from torch_utils.ops import bias_act, upfirdn2d, filtered_lrelu
t = time.time(); print([m._init() for m in (bias_act, upfirdn2d, filtered_lrelu)], round(time.time() - t), flush=True)
'''

def _start_nvidia_build():
    "Build NVIDIA's CUDA extensions in a background process while the a2v rows are measured (minutes of nvcc)."
    import subprocess, sys
    root = os.environ.get('A2V_SG3_REF')
    if not root or not torch.cuda.is_available() or not Path(root, 'training', 'networks_stylegan3.py').exists(): return None
    return subprocess.Popen([sys.executable, '-c', _BUILD, root], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

def bench() -> list[dict]:
    rows = []
    build = _start_nvidia_build()
    dry = os.environ.get('A2V_BENCH_DRY')      # a quick rehearsal on the CPU with the tiny generator
    if not torch.cuda.is_available() and not dry:
        return [dict(what='stylegan3 GPU bench', value='no CUDA', unit='(run `make bench` on a GPU machine)')]
    from a2v.stylegan3 import Generator, R256_ARCH
    from a2v.core import load_tensors
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    name = torch.cuda.get_device_name(0) if dev.type == 'cuda' else 'CPU (dry run)'
    _emit(rows, what=f'device: {name}, torch {torch.__version__}', value='', unit='')
    arch = R256_ARCH
    if dry:
        from a2v.core import get_config
        arch = get_config('tiny').generator.arch

    # 1. parity on the GPU: the committed NVIDIA fixtures (max abs error, fp32)
    fx = Path(__file__).parent/'fixtures'/'stylegan3'
    from a2v.stylegan3 import load_state
    for p in sorted(fx.glob('*.safetensors')):
        t, meta = load_tensors(p)
        G = Generator(**meta['init_kwargs']).eval()
        load_state(G, {k[2:]: v for k, v in t.items() if k.startswith('G.')}, p.name)
        G = G.to(dev)
        with torch.no_grad(): out = G.synthesis(t['ws_in'].to(dev), noise_mode='const').cpu()
        _emit(rows, what=f'parity on GPU, fixture {p.stem}: max |a2v - NVIDIA(CPU)|', value=f"{(out - t['ref_img_ws']).abs().max():.2e}", unit='')

    torch.manual_seed(0)
    G = Generator(**arch).to(dev).eval().requires_grad_(False)
    batches = (1, 2, 4) if dry else (1, 8, 32)
    ws = {B: G.mapping(torch.randn(B, G.z_dim, device=dev)) for B in batches}
    tgt = {B: _fwd(G.synthesis, ws[B], None).detach() for B in batches}
    ref32, B8 = tgt[batches[1]], batches[1]
    table = _fused_paths(rows, G, ws, tgt, batches, dev)
    # 2. a2v variants
    variants = [('fp32', None, False), ('TF32', None, True), ('bf16 autocast', torch.bfloat16, False),
                ('fp16 autocast', torch.float16, False)]
    pick = os.environ.get('A2V_BENCH_VARIANTS')             # e.g. 'fp32,bf16 autocast' for a short run
    if pick: variants = [v for v in variants if v[0] in pick.split(',')]
    skip = os.environ.get('A2V_BENCH_SKIP', '')               # sections to leave out: profile,engine,encoder,compile
    for name, dtype, tf32 in variants:
        with _tf32(tf32):
            out = _fwd(G.synthesis, ws[B8], dtype).float()
            err = (out - ref32).abs().max().item(); ps = 10 * math.log10(4 / max((out - ref32).square().mean().item(), 1e-20))
            _emit(rows, what=f'a2v {name}: output vs fp32, max abs err / PSNR dB (B=8)', value=f'{err:.2e}/{ps:.1f}', unit='')
            for B in batches:
                if _left() < 60: break
                if not _timed(rows, f'a2v {name}', B, lambda: _fwd(G.synthesis, ws[B], dtype),
                              lambda: _stepper(G.synthesis, ws[B], tgt[B], dtype)): break
    if dev.type == 'cuda': _emit(rows, what='peak GPU memory so far', value=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2), unit='GiB')

    if dev.type == 'cuda' and _left() > 120 and 'profile' not in skip:
        _emit(rows, what='profile: a2v fp32 inversion step B=8, top kernels', value='', unit='')
        try: _profile(rows, _stepper(G.synthesis, ws[B8], tgt[B8], None))
        except Exception as e: _emit(rows, what='profile failed', value=type(e).__name__, unit=str(e)[:120])

    # 3. the real engine (invert_clips: MSE + 10·LPIPS-alex, book-keeping, per-step syncs)
    try:
        if 'engine' in skip: raise RuntimeError('skipped')
        from a2v.lpips import get_lpips
        lp = get_lpips('alex', device=dev, fetch=False)
        for B in batches[:2]:
            if _left() < 60: break
            ms = _cuda_ms(_stepper(G.synthesis, ws[B], tgt[B], None, lp))
            _emit(rows, what=f'a2v fp32 inversion step (MSE+10·LPIPS-alex) B={B}', value=round(ms, 2), unit='ms/step')
            ms = _cuda_ms(_stepper(G.synthesis, ws[B], tgt[B], torch.bfloat16, lp))
            _emit(rows, what=f'a2v bf16 inversion step (MSE+10·LPIPS-alex) B={B}', value=round(ms, 2), unit='ms/step')
        import importlib.util
        spec = importlib.util.spec_from_file_location('bench_invert', Path(__file__).parent/'bench_invert.py')
        bi = importlib.util.module_from_spec(spec); spec.loader.exec_module(bi)
        if _left() > 90:
            for r in bi._rows('R-256 on GPU (alex)', G, lp, 'alex', batches[:2], steps=2 if dry else 5): _emit(rows, **r)
    except Exception as e: _emit(rows, what='engine rows failed', value=type(e).__name__, unit=str(e)[:120])

    # 3b. encoder starts (#32): one ReStyle-pSp start (IR-SE-50, 5 refinement steps) against Adam steps, per 125-frame clip
    if _left() > 90 and 'encoder' not in skip:
        try:
            import importlib.util
            spec = importlib.util.spec_from_file_location('bench_encoder', Path(__file__).parent/'bench_encoder.py')
            be = importlib.util.module_from_spec(spec); spec.loader.exec_module(be)
            er = []; be._paper_rows(er, dev)
            for r in er: _emit(rows, **r)
        except Exception as e: _emit(rows, what='encoder rows failed', value=type(e).__name__, unit=str(e)[:120])

    # 4. torch.compile (compile time reported separately; one shape per compiled graph)
    import torch._dynamo as _dynamo
    _dynamo.config.recompile_limit = 64                  # 16 layers share one forward: each is its own frame
    for B in batches[1:2]:
        if _left() < 150 or 'compile' in skip: break
        try:
            synth = torch.compile(G.synthesis, dynamic=False)
            t = time.time(); step = _stepper(synth, ws[B], tgt[B], None); step()
            if dev.type == 'cuda': torch.cuda.synchronize()
            _emit(rows, what=f'torch.compile first step (compile) B={B}', value=round(time.time() - t, 1), unit='s')
            _emit(rows, what=f'a2v fp32 compiled inversion step (MSE) B={B}', value=round(_cuda_ms(step), 2), unit='ms/step')
            stepb = _stepper(synth, ws[B], tgt[B], torch.bfloat16); stepb()
            _emit(rows, what=f'a2v bf16 compiled inversion step (MSE) B={B}', value=round(_cuda_ms(stepb), 2), unit='ms/step')
        except Exception as e: _emit(rows, what=f'torch.compile B={B} failed', value=type(e).__name__, unit=str(e)[:200])
    # 5. NVIDIA's code with its CUDA kernels
    root = os.environ.get('A2V_SG3_REF')
    if root and Path(root, 'training', 'networks_stylegan3.py').exists() and _left() > 60:
        try:
            if build is not None:
                out = build.communicate(timeout=max(_left() - 45, 1))[0]
                _emit(rows, what='NVIDIA extensions build (background): output tail', value='', unit=out.strip()[-300:].replace('\n', ' | '))
            ref = _nvidia(root)
            from torch_utils.ops import bias_act, upfirdn2d, filtered_lrelu
            t = time.time(); ok = [m._init() for m in (bias_act, upfirdn2d, filtered_lrelu)]
            _emit(rows, what='NVIDIA CUDA kernels built (bias_act, upfirdn2d, filtered_lrelu)', value=str(ok), unit=f'{time.time() - t:.0f} s')
            Gr = ref.Generator(**_nvidia_kwargs(arch)).to(dev).eval().requires_grad_(False)
            Gr.load_state_dict(G.state_dict())
            for kw, name in (({'force_fp32': True}, 'fp32'), ({}, 'official mixed fp16')):
                with torch.no_grad(): out = Gr.synthesis(ws[B8], noise_mode='const', **kw).float()
                _emit(rows, what=f'NVIDIA CUDA {name}: max |NVIDIA - a2v fp32| (B=8)', value=f'{(out - ref32).abs().max().item():.2e}', unit='')
                for B in batches:
                    if _left() < 30: break
                    if not _timed(rows, f'NVIDIA CUDA {name}', B, lambda: _fwd(Gr.synthesis, ws[B], None, **kw),
                                  lambda: _stepper(Gr.synthesis, ws[B], tgt[B], None, **kw)): break
        except Exception as e: _emit(rows, what='NVIDIA CUDA rows failed', value=type(e).__name__, unit=str(e)[:200])

    if dev.type == 'cuda': _emit(rows, what='peak GPU memory', value=round(torch.cuda.max_memory_allocated() / 2 ** 30, 2), unit='GiB')
    print('\n| path | batch | ms/step | peak GiB | s per 125-frame clip |\n|---|---|---|---|---|\n' + '\n'.join(table), flush=True)
    return rows

if __name__ == '__main__': bench()
