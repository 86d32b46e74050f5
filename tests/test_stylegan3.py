"Parity of a2v.stylegan3 with NVIDIA's StyleGAN3, the safe pickle loader, and our own format."
import collections, contextlib, io, os, pickle, sys, types
from pathlib import Path
import numpy as np, pytest, torch
from a2v.core import UnsafePickleError, BadInputError, load_tensors
from a2v.stylegan3 import Generator, load_generator, save_generator, safe_load_pickle, load_state
from nvidia_pickle import write_nvidia_style_pickle as _write_nvidia_style_pickle

FIX = Path(__file__).parent/'fixtures'/'stylegan3'
FIXTURES = sorted(p.stem for p in FIX.glob('*.safetensors'))
torch.set_num_threads(min(2, torch.get_num_threads()))

def _fixture(name):
    t, meta = load_tensors(FIX/f'{name}.safetensors')
    return t, meta, {k[2:]: v for k, v in t.items() if k.startswith('G.')}

def _ours(name):
    t, meta, sd = _fixture(name)
    G = Generator(**meta['init_kwargs']).eval()
    load_state(G, sd, name)
    return G, t, meta

def test_fixtures_present_and_small():
    assert {'t16', 'r16', 't32', 'r32'} <= set(FIXTURES)
    assert sum(p.stat().st_size for p in FIX.iterdir()) < 2e6

@pytest.mark.parametrize('name', FIXTURES)
def test_parity_with_nvidia(name):
    "Mapping (with truncation) and synthesis (from z, from random W+, with a user transform) match NVIDIA's outputs."
    G, t, meta = _ours(name)
    with torch.no_grad():
        ws = G.mapping(t['z'], truncation_psi=meta['truncation_psi'])
        assert (ws - t['ref_ws']).abs().max() <= 1e-3
        for ws_in, ref in ((ws, t['ref_img_z']), (t['ws_in'], t['ref_img_ws'])):
            img = G.synthesis(ws_in, noise_mode='const')
            assert img.shape == ref.shape and ref.std() > 0.1      # the reference is not trivially small
            assert (img - ref).abs().max() <= 1e-3
        G.synthesis.input.transform.copy_(t['transform'])
        assert (G.synthesis(t['ws_in']) - t['ref_img_tf']).abs().max() <= 1e-3

@pytest.mark.parametrize('name', FIXTURES)
def test_names_and_filters_match(name):
    "A freshly built generator has NVIDIA's state-dict names and shapes, and designs the same filters."
    t, meta, sd = _fixture(name)
    G = Generator(**meta['init_kwargs'])
    ours = G.state_dict()
    assert set(ours) == set(sd)
    for k, v in sd.items():
        assert ours[k].shape == v.shape, k
        if k.endswith('_filter'): assert (ours[k] - v).abs().max() < 1e-6, k

# --- NVIDIA-structured pickles, built here without any NVIDIA code: tests/nvidia_pickle.py

def test_nvidia_style_pickle_loads_without_running_it(tmp_path):
    G, t, meta = _ours('r16')
    p = tmp_path/'network-snapshot.pkl'
    _write_nvidia_style_pickle(G, meta['init_kwargs'], p)
    assert b'torch_utils.persistence' in p.read_bytes() and 'torch_utils' not in sys.modules
    G2 = load_generator(p)
    assert 'torch_utils' not in sys.modules and 'dnnlib' not in sys.modules
    assert (G2.num_ws, G2.w_dim, G2.z_dim, G2.img_resolution) == (G.num_ws, G.w_dim, G.z_dim, G.img_resolution)
    assert torch.equal(G2.mapping.w_avg, G.mapping.w_avg)
    with torch.no_grad(): assert (G2.synthesis(t['ws_in']) - t['ref_img_ws']).abs().max() <= 1e-3

def test_pickle_derived_attributes_are_adopted(tmp_path):
    "Hyper-parameters that exist only as derived layer attributes (here conv_clamp) come from the pickle."
    G, t, meta = _ours('t16')
    for name in G.synthesis.layer_names: getattr(G.synthesis, name).conv_clamp = 0.05
    p = tmp_path/'g.pkl'; _write_nvidia_style_pickle(G, meta['init_kwargs'], p)
    G2 = load_generator(p)
    assert all(getattr(G2.synthesis, n).conv_clamp == 0.05 for n in G2.synthesis.layer_names)
    with torch.no_grad(): assert torch.allclose(G2.synthesis(t['ws_in']), G.synthesis(t['ws_in']), atol=1e-6)

class _Evil:
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

def test_malicious_pickle_is_refused_without_side_effect(tmp_path):
    marker = tmp_path/'pwned'
    p = tmp_path/'evil.pkl'; p.write_bytes(pickle.dumps({'G_ema': _Evil(marker)}))
    with pytest.raises(UnsafePickleError, match=r'(posix|os)\.system'): load_generator(p)
    assert not marker.exists()
    # hand-written GLOBAL opcode, and a payload hidden inside a network's init kwargs
    p.write_bytes(b'cos\nsystem\n(Vtouch ' + str(marker).encode() + b'\ntR.')
    with pytest.raises(UnsafePickleError, match=r'os\.system'): safe_load_pickle(p)
    G, t, meta = _ours('r16')
    q = tmp_path/'evil2.pkl'
    _write_nvidia_style_pickle(G, dict(meta['init_kwargs'], channel_base=_Evil(marker)), q)
    with pytest.raises(UnsafePickleError, match='system'): load_generator(q)
    assert not marker.exists()
    assert isinstance(UnsafePickleError('x'), pickle.UnpicklingError)

def test_builtins_eval_refused(tmp_path):
    p = tmp_path/'e.pkl'; p.write_bytes(b'cbuiltins\neval\n(V1+1\ntR.')
    with pytest.raises(UnsafePickleError, match=r'builtins\.eval'): safe_load_pickle(p)

def test_own_format_roundtrip(tmp_path):
    G, t, meta = _ours('t32')
    p = save_generator(G, tmp_path/'g.safetensors')
    assert sorted(x.name for x in tmp_path.iterdir()) == ['g.safetensors']    # atomic: no temp file left
    G2 = load_generator(p)
    assert G2.arch == G.arch
    with torch.no_grad(): assert torch.equal(G2.synthesis(t['ws_in']), G.synthesis(t['ws_in']))
    (tmp_path/'bad.safetensors').write_bytes(b'not a file')
    with pytest.raises(BadInputError, match='bad.safetensors'): load_generator(tmp_path/'bad.safetensors')
    with pytest.raises(BadInputError, match='nope.pkl'): load_generator(tmp_path/'nope.pkl')

def test_backward_and_update_emas():
    "fwd+bwd reaches ws and every synthesis parameter; update_emas moves the magnitude EMAs and w_avg."
    G, t, meta = _ours('r16')
    G.train().requires_grad_(True)
    ws = t['ws_in'].clone().requires_grad_(True)
    G.synthesis(ws).square().mean().backward()
    assert ws.grad.abs().sum() > 0
    assert all(p.grad is not None for n, p in G.synthesis.named_parameters())
    before = [b.clone() for n, b in G.named_buffers() if n.endswith('magnitude_ema')]
    with torch.no_grad(): G(t['z'], update_emas=True)
    after = [b for n, b in G.named_buffers() if n.endswith('magnitude_ema')]
    assert all(not torch.equal(a, b) for a, b in zip(after, before))
