"""The fused filtered leaky ReLU (a2v.filtered_lrelu.filtered_lrelu): gradients, parity with the reference path, the
synthesis layers that use it, and its Triton kernels run on the CPU by Triton's interpreter (in a subprocess)."""
import json, math, os, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from a2v.core import load_tensors
from a2v.filtered_lrelu import design_lowpass_filter, filtered_lrelu, filtered_lrelu_ref, stored_bytes
from a2v.stylegan3 import Generator, load_state, set_filtered_lrelu_impl, R256_ARCH

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT/'tests'/'fixtures'/'stylegan3'
torch.set_num_threads(min(2, torch.get_num_threads()))

def _case(up, down, radial, padding, clamp, slope, H=13, W=11, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    fu = design_lowpass_filter(6 * up, 2.0, 2.0, 8 * up).to(dtype) if up > 1 else None
    fd = design_lowpass_filter(6 * down, 2.0, 2.0, 8 * down, radial=radial) if down > 1 else None
    x = torch.randn(1, 2, H, W, generator=g, dtype=dtype, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=dtype, requires_grad=True)
    return x, b, fu, None if fd is None else fd.to(dtype), dict(up=up, down=down, padding=padding, clamp=clamp, slope=slope)

# every kind of layer in the T/R configs and the tiny preset, plus a bigger down factor and slope 1 (linear)
CASES = [(2, 2, True, (11, 10, 11, 10), None, 0.2), (2, 2, False, (11, 10, 11, 10), 0.5, 0.2),
         (4, 2, True, (-2, -5, -2, -5), None, 0.2), (2, 1, False, (-4, -5, -4, -5), 0.7, 0.2),
         (1, 1, False, (-1, -2, 0, -3), None, 0.2), (1, 2, True, (3, 2, 1, 4), 0.5, 1.0),
         (2, 4, False, (5, 6, 7, 4), 0.3, 0.2)]

@pytest.mark.parametrize('case', CASES)
def test_gradcheck_and_parity(case):
    H = W = 24 if case[1] == 4 else 12
    x, b, fu, fd, kw = _case(*case, H=H, W=W)
    tiles = dict(tile_elems=40, min_rows=2)                  # tiles of 2 output rows: the halos overlap
    fn = lambda x, b: filtered_lrelu(x, fu, fd, b, impl='torch', **tiles, **kw)
    assert torch.autograd.gradcheck(fn, (x, b), fast_mode=True)
    if case in CASES[:2]:                                    # the full Jacobian on a smaller input
        xs = x[:, :1, :6, :6].detach().clone().requires_grad_(True)
        assert torch.autograd.gradcheck(fn, (xs, b[:1].detach().clone().requires_grad_(True)))
    for t in (tiles, {}):
        y = filtered_lrelu(x, fu, fd, b, impl='torch', **t, **kw)
        y_ref = filtered_lrelu_ref(x, fu, fd, b, **kw)
        assert y.shape == y_ref.shape and (y - y_ref).abs().max() < 1e-12
        g = torch.randn_like(y)
        for ours, ref in zip(torch.autograd.grad(y, (x, b), g), torch.autograd.grad(y_ref, (x, b), g)):
            assert (ours - ref).abs().max() < 1e-12

def test_fp32_channels_last_and_no_bias():
    x, b, fu, fd, kw = _case(*CASES[0], H=20, W=18, dtype=torch.float32)
    xc = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y = filtered_lrelu(xc, fu, fd, None, impl='torch', tile_elems=100, min_rows=3, **kw)
    y_ref = filtered_lrelu_ref(x, fu, fd, None, **kw)
    assert y.is_contiguous(memory_format=torch.channels_last) and (y - y_ref).abs().max() < 1e-5
    g = torch.randn_like(y)
    y.backward(g); gx, = torch.autograd.grad(y_ref, x, g)
    assert (xc.grad - gx).abs().max() < 1e-5
    with pytest.raises(ValueError, match='impl'): filtered_lrelu(x, fu, fd, b, impl='cuda')

@pytest.mark.parametrize('name', ['r16', 't16', 'r32'])
def test_synthesis_fused_matches_reference(name):
    "Whole synthesis, fused vs reference path: image, gradient to ws and to every parameter (fit-generator trains them)."
    t, meta = load_tensors(FIX/f'{name}.safetensors')
    G = Generator(**meta['init_kwargs']).train()
    load_state(G, {k[2:]: v for k, v in t.items() if k.startswith('G.')}, name)
    out = {}
    for impl in ('reference', 'auto'):
        set_filtered_lrelu_impl(G, impl); G.zero_grad()
        ws = t['ws_in'].clone().requires_grad_(True)
        img = G.synthesis(ws)
        (img * torch.linspace(-1, 1, img.numel()).view(img.shape)).sum().backward()
        out[impl] = img.detach(), ws.grad, {n: p.grad.clone() for n, p in G.synthesis.named_parameters()}
    (i0, w0, p0), (i1, w1, p1) = out['reference'], out['auto']
    assert (i0 - t['ref_img_ws']).abs().max() <= 1e-3 and (i1 - t['ref_img_ws']).abs().max() <= 1e-3
    assert (i1 - i0).abs().max() < 1e-5
    assert (w1 - w0).abs().max() <= 1e-4 * w0.abs().max()
    for n in p0: assert (p1[n] - p0[n]).abs().max() <= 1e-4 * p0[n].abs().max() + 1e-8, n
    assert any(n.endswith('.bias') and p0[n].abs().max() > 0 for n in p0)

def test_stored_bytes_r256():
    with torch.device('meta'): G = Generator(**R256_ARCH)
    rows = stored_bytes(G)
    assert len(rows) == 14 and sum(r['upsampled'] for r in rows) > 5 * sum(r['fused'] for r in rows)

def test_import_does_not_import_triton():
    code = 'import sys, a2v.filtered_lrelu, a2v.stylegan3; assert "triton" not in sys.modules, "triton imported"'
    subprocess.run([sys.executable, '-c', code], check=True, cwd=ROOT, env={**os.environ, 'PYTHONPATH': str(ROOT)})

def test_old_import_path():
    "The op's public names moved from a2v.stylegan3 to a2v.filtered_lrelu; `from a2v.stylegan3 import X` still works."
    import a2v.filtered_lrelu as fl, a2v.stylegan3 as sg3
    assert fl.__all__ and all(getattr(sg3, n) is getattr(fl, n) for n in fl.__all__)

_INTERPRET = '''
import json, math, sys, torch
from a2v.filtered_lrelu import design_lowpass_filter, filtered_lrelu, filtered_lrelu_ref
res = []
for up, down, radial, padding, clamp, slope, H, W in json.loads(sys.argv[1]):
    g = torch.Generator().manual_seed(0)
    fu = design_lowpass_filter(6 * up, 2.0, 2.0, 8 * up) if up > 1 else None
    fd = design_lowpass_filter(6 * down, 2.0, 2.0, 8 * down, radial=radial) if down > 1 else None
    x = torch.randn(1, 2, H, W, generator=g, requires_grad=True); b = torch.randn(2, generator=g, requires_grad=True)
    kw = dict(up=up, down=down, padding=padding, clamp=clamp, slope=slope)
    y, y_ref = filtered_lrelu(x, fu, fd, b, impl='triton', **kw), filtered_lrelu_ref(x, fu, fd, b, **kw)
    dy = torch.randn_like(y_ref)
    grads = [torch.autograd.grad(o, (x, b), dy) for o in (y, y_ref)]
    res.append(dict(shape=list(y.shape) == list(y_ref.shape), y=(y - y_ref).abs().max().item(), scale=y_ref.abs().max().item(),
                    dx=(grads[0][0] - grads[1][0]).abs().max().item(), db=(grads[0][1] - grads[1][1]).abs().max().item()))
print(json.dumps(res))
'''

def test_triton_kernels_in_interpreter():
    "The Triton forward and backward kernels, run by TRITON_INTERPRET=1 on CPU tensors, match the reference path."
    pytest.importorskip('triton')
    cases = [(2, 2, True, (11, 10, 11, 10), 0.5, 0.2, 13, 11),      # R layer: radial down filter, clamp that bites
             (4, 2, True, (-2, -5, -2, -5), None, 0.2, 12, 12),      # ×4 upsampling, cropping
             (2, 1, False, (-4, -5, -4, -5), None, 1.0, 14, 13)]     # no down filter, linear
    env = {**os.environ, 'TRITON_INTERPRET': '1', 'PYTHONPATH': str(ROOT)}
    p = subprocess.run([sys.executable, '-c', _INTERPRET, json.dumps(cases)], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    for case, r in zip(cases, json.loads(p.stdout.strip().splitlines()[-1])):
        assert r['shape'] and r['scale'] > 0.1, (case, r)
        assert r['y'] < 1e-5 and r['dx'] < 1e-5 and r['db'] < 1e-4, (case, r)

@pytest.mark.parametrize('nhwc', [True, False])
@pytest.mark.parametrize('clamp', [None, 0.8, 50.0])
def test_modconv_lrelu_gradcheck(nhwc, clamp):
    "The 1×1 modulated conv + bias + leaky ReLU + clamp op (layers without filters): its backward against finite differences."
    from a2v.stylegan3 import _ModConvLReLU
    g = torch.Generator().manual_seed(1)
    N, I, O, HW = 2, 3, 4, 5
    xf = torch.randn(*((N, HW, I) if nhwc else (N, I, HW)), generator=g, dtype=torch.float64, requires_grad=True)
    wn = torch.randn(N, O, I, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(O, generator=g, dtype=torch.float64, requires_grad=True)
    fn = lambda x, w, b: _ModConvLReLU.apply(x, w, b, nhwc, 0.2, clamp)
    assert torch.autograd.gradcheck(fn, (xf, wn, b))
    y = fn(xf, wn, b)
    if clamp == 0.8: assert y.abs().max() == 0.8 and (y < 0).any()     # both the clamp and the negative slope were exercised
    assert torch.autograd.gradcheck(lambda x, w: _ModConvLReLU.apply(x, w, None, nhwc, 0.2, clamp), (xf, wn))

def test_tiny_synthesis_fused_matches_reference():
    "The tiny preset's generator (no down filters: its plain layers take the op above): image and every gradient."
    from a2v.core import get_config
    torch.manual_seed(0)
    G = Generator(**get_config('tiny').generator.arch).train()
    ws = G.mapping(torch.randn(3, G.z_dim)).detach()
    out = {}
    for impl in ('reference', 'auto'):
        set_filtered_lrelu_impl(G, impl); G.zero_grad()
        w = ws.clone().requires_grad_(True)
        img = G.synthesis(w)
        (img * torch.linspace(-1, 1, img.numel()).view(img.shape)).sum().backward()
        out[impl] = img.detach(), w.grad, {n: p.grad.clone() for n, p in G.synthesis.named_parameters() if p.grad is not None}
    (i0, w0, p0), (i1, w1, p1) = out['reference'], out['auto']
    assert (i1 - i0).abs().max() < 1e-5
    assert (w1 - w0).abs().max() <= 1e-4 * w0.abs().max()
    assert p0.keys() == p1.keys() and len(p0) > 20
    for n in p0: assert (p1[n] - p0[n]).abs().max() <= 1e-4 * p0[n].abs().max() + 1e-8, n
