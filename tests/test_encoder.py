"""ReStyle-pSp (a2v.encoder): the authors' checkpoint layout read back exactly, hostile files refused, train-encoder end to end.

The reference below is a second, functional implementation of the authors' BackboneEncoder forward pass (IR-SE-50
units, GradualStyleBlock heads, EqualLinear), written from their layout and reading the state dict by key, so that a
renamed key, a wrong stride or a missing gate in `a2v.encoder` shows up as a mismatch."""
import math, os, subprocess, sys
from pathlib import Path
import pytest, torch, torch.nn.functional as F

from a2v.core import UnsafePickleError, BadInputError
from a2v.encoder import load_restyle_psp, load_encoder, encode, ReStylePSP

IR_SE_50 = ((64, 3), (128, 4), (256, 14), (512, 3))   # (depth, units) of each stage; the first unit of each has stride 2

def authors_state_dict(n_styles:int, seed:int=0, stages=IR_SE_50, w_dim:int=512, head_convs:int=4) -> dict:
    "Random weights under the authors' key names and shapes (BN statistics and PReLU slopes away from their defaults)."
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: torch.randn(*s, generator=g) * scale
    sd = {}
    def bn(p, c):
        sd[p + '.weight'] = 1 + r(c, scale=0.1); sd[p + '.bias'] = r(c, scale=0.1)
        sd[p + '.running_mean'] = r(c, scale=0.1); sd[p + '.running_var'] = 1 + torch.rand(c, generator=g)
        sd[p + '.num_batches_tracked'] = torch.tensor(100)
    sd['input_layer.0.weight'] = r(64, 6, 3, 3, scale=1 / math.sqrt(54)); bn('input_layer.1', 64)
    sd['input_layer.2.weight'] = 0.25 + r(64, scale=0.05)
    i, c_in = 0, 64
    for depth, n in stages:
        for u in range(n):
            p = f'body.{i}.'
            if c_in != depth:
                sd[p + 'shortcut_layer.0.weight'] = r(depth, c_in, 1, 1, scale=1 / math.sqrt(c_in)); bn(p + 'shortcut_layer.1', depth)
            bn(p + 'res_layer.0', c_in)
            sd[p + 'res_layer.1.weight'] = r(depth, c_in, 3, 3, scale=1 / math.sqrt(9 * c_in))
            sd[p + 'res_layer.2.weight'] = 0.25 + r(depth, scale=0.05)
            sd[p + 'res_layer.3.weight'] = r(depth, depth, 3, 3, scale=0.5 / math.sqrt(9 * depth)); bn(p + 'res_layer.4', depth)
            sd[p + 'res_layer.5.fc1.weight'] = r(depth // 16, depth, 1, 1, scale=1 / math.sqrt(depth))
            sd[p + 'res_layer.5.fc2.weight'] = r(depth, depth // 16, 1, 1, scale=1 / math.sqrt(depth // 16))
            i, c_in = i + 1, depth
    for j in range(n_styles):
        for k in range(head_convs):
            sd[f'styles.{j}.convs.{2 * k}.weight'] = r(w_dim, c_in if k == 0 else w_dim, 3, 3, scale=1 / math.sqrt(9 * w_dim))
            sd[f'styles.{j}.convs.{2 * k}.bias'] = r(w_dim, scale=0.1)
        sd[f'styles.{j}.linear.weight'] = r(w_dim, w_dim); sd[f'styles.{j}.linear.bias'] = r(w_dim, scale=0.1)
    return sd

def authors_forward(sd:dict, x:torch.Tensor, stages=IR_SE_50) -> torch.Tensor:
    "The authors' BackboneEncoder forward pass, written functionally over their state dict: (B, 6, S, S) → (B, n_styles, w_dim)."
    def bn(t, p): return F.batch_norm(t, sd[p + '.running_mean'], sd[p + '.running_var'], sd[p + '.weight'], sd[p + '.bias'], False, 0., 1e-5)
    h = F.prelu(bn(F.conv2d(x, sd['input_layer.0.weight'], padding=1), 'input_layer.1'), sd['input_layer.2.weight'])
    i = 0
    for depth, n in stages:
        for u in range(n):
            p, stride = f'body.{i}.', 2 if u == 0 else 1
            if p + 'shortcut_layer.0.weight' in sd:
                short = bn(F.conv2d(h, sd[p + 'shortcut_layer.0.weight'], stride=stride), p + 'shortcut_layer.1')
            else: short = F.max_pool2d(h, 1, stride)
            res = F.conv2d(bn(h, p + 'res_layer.0'), sd[p + 'res_layer.1.weight'], padding=1)
            res = F.prelu(res, sd[p + 'res_layer.2.weight'])
            res = bn(F.conv2d(res, sd[p + 'res_layer.3.weight'], stride=stride, padding=1), p + 'res_layer.4')
            gate = F.adaptive_avg_pool2d(res, 1)
            gate = torch.sigmoid(F.conv2d(F.relu(F.conv2d(gate, sd[p + 'res_layer.5.fc1.weight'])), sd[p + 'res_layer.5.fc2.weight']))
            h, i = res * gate + short, i + 1
    outs, j = [], 0
    while f'styles.{j}.linear.weight' in sd:
        s, k = h, 0
        while f'styles.{j}.convs.{k}.weight' in sd:
            s = F.leaky_relu(F.conv2d(s, sd[f'styles.{j}.convs.{k}.weight'], sd[f'styles.{j}.convs.{k}.bias'], stride=2, padding=1), 0.01)
            k += 2
        W = sd[f'styles.{j}.linear.weight']
        outs.append(F.linear(s.view(-1, W.shape[1]), W * (1 / math.sqrt(W.shape[1])), sd[f'styles.{j}.linear.bias']))
        j += 1
    return torch.stack(outs, 1)

def save_authors_checkpoint(path, enc_sd:dict, latent_avg, opts=None):
    "A checkpoint as ReStyle's coach saves it: state_dict (encoder.* and decoder.*), opts, latent_avg."
    sd = {f'encoder.{k}': v for k, v in enc_sd.items()} | {'decoder.synthesis.input.affine.weight': torch.zeros(4, 512)}
    torch.save({'state_dict': sd, 'latent_avg': latent_avg,
                'opts': opts or {'encoder_type': 'BackboneEncoder', 'input_nc': 6, 'n_iters_per_batch': 5, 'output_size': 1024,
                                 'dataset_type': 'ffhq_encode', 'lpips_lambda': 0.8, 'checkpoint_path': None}}, path)

def test_authors_layout_ir_se_50_parity(tmp_path):
    "A full IR-SE-50 with 16 heads (the SG3 ReStyle-pSp's shape) gives the functional reference's codes to 1e-4."
    torch.manual_seed(0)
    sd = authors_state_dict(16)
    la = torch.randn(16, 512)
    save_authors_checkpoint(tmp_path/'restyle_pSp_ffhq.pt', sd, la)
    E = load_restyle_psp(tmp_path/'restyle_pSp_ffhq.pt')
    assert E.config == dict(n_styles=16, w_dim=512, input_size=256, stem=64, units=[3, 4, 14, 3], widths=[64, 128, 256, 512], se=True)
    x = torch.rand(2, 6, 256, 256) * 2 - 1
    with torch.no_grad(): ours, ref = E.encoder(x), authors_forward(sd, x)
    assert ours.shape == (2, 16, 512)
    assert (ours - ref).abs().max() <= 1e-4 * max(1., ref.abs().max().item()), (ours - ref).abs().max()
    assert torch.equal(E.latent_avg, la)
    assert not any(p.requires_grad for p in E.parameters()) and not E.training

def test_latent_avg_as_one_row(tmp_path):
    "pSp stores latent_avg as one w (512,) or (1, 512) in some checkpoints: it is used for every entry."
    stages = ((16, 1), (32, 1))
    sd = authors_state_dict(3, stages=stages, w_dim=32, head_convs=2)
    for la in (torch.randn(32), torch.randn(1, 32)):
        save_authors_checkpoint(tmp_path/'c.pt', sd, la)
        E = load_restyle_psp(tmp_path/'c.pt')
        assert E.latent_avg.shape == (3, 32) and torch.equal(E.latent_avg[2], la.reshape(-1))
        x = torch.rand(1, 6, 16, 16)
        with torch.no_grad(): assert (E.encoder(x) - authors_forward(sd, x, stages)).abs().max() < 1e-4

@pytest.mark.parametrize('how', ['reduce', 'legacy'])
def test_hostile_checkpoint_refused(tmp_path, how):
    "A checkpoint that would run a command when unpickled is refused in one line, and the command never runs."
    marker = tmp_path/'ran'
    class Payload:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    ck = {'state_dict': {'encoder.input_layer.0.weight': torch.zeros(1)}, 'opts': Payload(), 'latent_avg': torch.zeros(512)}
    p = tmp_path/'evil.pt'
    torch.save(ck, p, _use_new_zipfile_serialization=(how == 'reduce'))
    with pytest.raises(UnsafePickleError) as e: load_restyle_psp(p)
    msg = str(e.value)
    assert str(p) in msg and 'refused' in msg and '\n' not in msg
    assert not marker.exists()
    r = subprocess.run([sys.executable, '-m', 'a2v.cli', 'weights', 'list'], capture_output=True, text=True)   # (package intact)
    assert r.returncode == 0

def test_wrong_checkpoints_one_line(tmp_path):
    bad = {'text.pt': b'hello', 'empty.pt': b''}
    for name, data in bad.items():
        (tmp_path/name).write_bytes(data)
        with pytest.raises(BadInputError, match='not a readable torch checkpoint'): load_restyle_psp(tmp_path/name)
    torch.save({'state_dict': {}, 'latent_avg': torch.zeros(512)}, tmp_path/'noenc.pt')
    with pytest.raises(BadInputError, match="no 'encoder.input_layer.0.weight'"): load_restyle_psp(tmp_path/'noenc.pt')
    sd = authors_state_dict(2, stages=((16, 1),), w_dim=16, head_convs=1)
    save_authors_checkpoint(tmp_path/'nolatent.pt', sd, None)
    with pytest.raises(BadInputError, match="latent_avg"): load_restyle_psp(tmp_path/'nolatent.pt')
    save_authors_checkpoint(tmp_path/'nan.pt', sd, torch.full((2, 16), float('nan')))
    with pytest.raises(BadInputError, match="NaN"): load_restyle_psp(tmp_path/'nan.pt')
