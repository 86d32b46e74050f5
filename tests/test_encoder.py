"""ReStyle-pSp (a2v.encoder): the authors' checkpoint layout read back exactly, hostile files refused, train-encoder end to end.

The reference below is a second, functional implementation of the authors' BackboneEncoder forward pass (IR-SE-50
units, GradualStyleBlock heads, EqualLinear), written from their layout and reading the state dict by key, so that a
renamed key, a wrong stride or a missing gate in `a2v.encoder` shows up as a mismatch."""
import math, os, shutil, subprocess, sys
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

# ---- a run: train-encoder, encoder-started inversion, §4.2's comparison
import numpy as np
from a2v.core import RunDir, append_jsonl, atomic_write_json, get_config, MissingStageOutputError, read_jsonl
from a2v.stylegan3 import Generator, save_generator

ARCH = dict(z_dim=32, w_dim=32, img_resolution=32, channel_base=512, channel_max=32, num_layers=4, conv_kernel=1,
            use_radial_filters=True, lrelu_upsampling=1)            # a fast random-init StyleGAN3-R (6 W+ rows, 32 px)
SETS = {'device': 'cpu', 'generator.source': 'generator/generator.safetensors', 'invert.steps_first': 4, 'invert.steps_next': 1,
        'invert.workers': 1, 'encoder.source': 'encoder/model.safetensors', 'encoder.units': [1, 1, 1, 1],
        'encoder.widths': [8, 12, 16, 24], 'encoder.stem': 8, 'encoder.iterations': 2, 'encoder.pairs': 24,
        'encoder.real_frames': 6, 'encoder.epochs': 2, 'encoder.batch_size': 8, 'encoder.codes_from': 'mapping'}

def _write_clip(run, cid, frames):
    from a2v.media import write_video, save_wav
    rd = RunDir(run); d = rd.clip_dir(cid)
    u8 = ((frames.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()   # (F, H, W, 3)
    write_video(d/'frames.mp4', u8, fps=25, crf=0)
    save_wav(d/'audio.wav', np.zeros(len(u8) * 640, np.float32), 16000)
    atomic_write_json(d/'meta.json', dict(frames=len(u8), fps=25.0, sample_rate=16000))
    append_jsonl(rd.manifest, dict(clip=cid, source='test', status='kept', reason=None, frames=len(u8), fps=25.0))

@pytest.fixture(scope='module')
def enc_run(tmp_path_factory):
    "A run of 4 short clips of a random generator's own images, with that generator, and its config."
    torch.manual_seed(0)
    G = Generator(**ARCH).eval().requires_grad_(False)
    run = tmp_path_factory.mktemp('enc')/'run'
    g = torch.Generator().manual_seed(1)
    for i in range(4):
        with torch.no_grad():
            wa, wb = G.mapping(torch.randn(2, G.z_dim, generator=g))
            a = torch.linspace(0, 1, 3)[:, None, None]
            _write_clip(run, f'c{i}', G.synthesis(wa + 0.3 * a * (wb - wa), noise_mode='const').clamp(-1, 1))
    save_generator(G, run/'generator'/'generator.safetensors')
    cfg = get_config('tiny', **SETS)
    RunDir(run).save_config(cfg)
    return run, cfg

def test_train_encoder_on_a_run(enc_run):
    "Pairs from the generator (no latents yet), the shared trainer's files, the model reads back and fits G; a second call is cached."
    from a2v.encoder import train_encoder, load_encoder, check_encoder_fits
    from a2v.stylegan3 import load_run_generator
    run, cfg = enc_run
    m = train_encoder(run, cfg, progress=False)
    assert m['pairs_made'] == 24 and m['pairs_real'] == 0 and m['epochs'] == 2 and np.isfinite(m['val_psnr'])
    for f in ('model.safetensors', 'last.pt', 'metrics.json', 'history.json'): assert (run/'encoder'/f).exists(), f
    E = load_encoder('encoder/model.safetensors', run)
    G = load_run_generator(run, cfg)
    check_encoder_fits(E, G, 'encoder/model.safetensors')
    assert torch.allclose(E.latent_avg, G.mapping.w_avg.expand(G.num_ws, -1))
    t = (run/'encoder'/'model.safetensors').stat().st_mtime_ns
    assert train_encoder(run, cfg, progress=False) == m and (run/'encoder'/'model.safetensors').stat().st_mtime_ns == t

def test_encoder_started_inversion_and_comparison(enc_run):
    "invert with warm_start='encoder' writes every clip, its metadata names the encoder; compare-starts writes its table and figure."
    from a2v.encoder import train_encoder
    from a2v.invert import invert_run, run_compare_starts, starts_table
    import dataclasses
    run, cfg = enc_run
    train_encoder(run, cfg, progress=False)
    c2 = get_config('tiny', **SETS, **{'invert.warm_start': 'encoder'})
    out = invert_run(run, c2, progress=False)
    assert sorted(out['inverted']) == ['c0', 'c1', 'c2', 'c3'] and not out['failed']
    from a2v.core import load_tensors
    t, meta = load_tensors(run/'latents'/'c0.safetensors')
    assert meta['warm_start'] == 'encoder' and meta['encoder'] == 'encoder/model.safetensors' and t['ws'].shape == (3, 6, 32)
    res = run_compare_starts(run, cfg, ks=(1,))
    assert res['clips'] == ['c3'] and res['frames'] == 3                     # no VAE split yet: the last fifth
    assert set(res['rows']) == {'encoder only', 'encoder + 1 step', 'encoder averaged over 5 frames + 1 step',
                                'encoder at frame 0, then warm starts', 'optimisation only (preset)'}
    assert (run/'encoder'/'starts.json').exists() and (run/'figures'/'fig_4_2_starts.png').exists()
    assert 'encoder only' in starts_table(res)

def test_missing_or_mismatched_encoder_one_line(enc_run, tmp_path):
    "A run without the encoder it names, and an encoder of another generator, each stop with one line naming the file."
    from a2v.invert import invert_run
    from a2v.encoder import ReStylePSP
    from a2v.train import save_model
    import shutil
    run = tmp_path/'run'; shutil.copytree(enc_run[0], run, ignore=shutil.ignore_patterns('latents'))   # clips left to invert
    c2 = get_config('tiny', **{**SETS, 'invert.init': 'encoder', 'encoder.source': 'encoder/none.safetensors'})
    with pytest.raises(MissingStageOutputError, match='a2v train-encoder'): invert_run(run, c2, progress=False, clip_ids=['c0'])
    arch = dict(n_styles=4, w_dim=32, input_size=32, stem=8, units=[1, 1, 1, 1], widths=[8, 12, 16, 24], se=True)
    save_model(tmp_path/'other.safetensors', ReStylePSP(**arch), arch)
    c3 = get_config('tiny', **{**SETS, 'invert.init': 'encoder', 'encoder.source': str(tmp_path/'other.safetensors')})
    with pytest.raises(BadInputError, match=r'writes \(4, 32\) codes; the generator takes \(6, 32\)'): invert_run(run, c3, progress=False, clip_ids=['c0'])

def test_cli_and_stale_state(enc_run, tmp_path):
    "`a2v train-encoder` and `a2v compare-starts` on a run; a clip's latents re-made since training: the encoder is trained again, with one warning."
    import shutil, subprocess, sys
    run = tmp_path/'run'; shutil.copytree(enc_run[0], run)
    sets = [a for k in ('encoder.epochs=1',) for a in ('--set', k)]
    a2v = lambda *args: subprocess.run([sys.executable, '-m', 'a2v.cli', *map(str, args)], capture_output=True, text=True, timeout=600)
    r = a2v('train-encoder', '--run', run, *sets)
    assert r.returncode == 0 and 'train-encoder: {' in r.stdout, r.stderr
    from a2v.invert import invert_run
    invert_run(run, get_config('tiny', **SETS), progress=False, clip_ids=['c0', 'c1'])
    r = a2v('train-encoder', '--run', run, *sets, '--set', 'encoder.real_frames=4')   # (config changed: retrains, no warning needed)
    assert r.returncode == 0 and '"pairs_real": 4' in r.stdout, r.stdout + r.stderr
    (run/'latents'/'c1.safetensors').unlink()
    r = a2v('train-encoder', '--run', run, *sets, '--set', 'encoder.real_frames=4')
    assert r.returncode == 0 and "a2v: warning: train-encoder: inputs changed since the model was trained (clip c1's latents removed): retraining" in r.stderr, r.stderr
    r = a2v('compare-starts', '--run', run, '--steps', '1', '--max-frames', '2')
    assert r.returncode == 0 and '| encoder only |' in r.stdout, r.stderr
    r = a2v('compare-starts', '--run', run, '--steps', 'x')
    assert r.returncode != 0 and r.stderr.strip().count('\n') == 0 and "--steps: 'x'" in r.stderr

def test_encoder_of_another_generator_warns(enc_run):
    "An encoder whose latent_avg is not the generator's w_avg (trained for another generator of the same shape, or the authors' for SG3-1024) warns once."
    import warnings
    from a2v.core import A2VWarning
    from a2v.encoder import ReStylePSP, check_encoder_fits
    from a2v.stylegan3 import load_run_generator
    run, cfg = enc_run
    G = load_run_generator(run, cfg)
    E = ReStylePSP(n_styles=G.num_ws, w_dim=G.w_dim, input_size=32, stem=8, units=(1, 1, 1, 1), widths=(8, 12, 16, 24))
    E.latent_avg.copy_(G.mapping.w_avg.expand_as(E.latent_avg))
    with warnings.catch_warnings(): warnings.simplefilter('error'); check_encoder_fits(E, G, 'mine')   # its own: silent
    E.latent_avg.add_(0.5)
    with pytest.warns(A2VWarning, match="other: its latent_avg is not this generator's w_avg"): check_encoder_fits(E, G, 'other')

def test_encoder_workers_share_a_clips_frames(enc_run, tmp_path):
    """warm_start='encoder' on 2 CPU workers: each worker takes a piece of every clip (with the context its averaged starts
    need); the pieces join into latents equal to one process's; a run stopped with a piece written finishes from it."""
    from a2v.encoder import train_encoder
    from a2v.core import load_tensors
    from a2v.invert import invert_run
    from a2v.stylegan3 import load_run_generator
    run, cfg = enc_run
    train_encoder(run, cfg, progress=False)
    c2 = get_config('tiny', **{**SETS, 'invert.warm_start': 'encoder', 'invert.encoder_smooth': 3, 'invert.steps_next': 2})
    runs = {}
    for name in ('one', 'two', 'stopped'):
        runs[name] = tmp_path/name
        shutil.copytree(run, runs[name], ignore=shutil.ignore_patterns('latents', 'figures'))
    one = invert_run(runs['one'], c2, progress=False, workers=1, clip_ids=['c0', 'c1'])
    two = invert_run(runs['two'], c2, progress=False, workers=2, clip_ids=['c0', 'c1'])
    assert one['workers'] == 1 and two['workers'] == 2 and sorted(two['inverted']) == ['c0', 'c1'] and two['frames'] == 6
    G = load_run_generator(run, cfg)
    for cid in ('c0', 'c1'):
        (a, ma), (b, mb) = load_tensors(runs['one']/'latents'/f'{cid}.safetensors'), load_tensors(runs['two']/'latents'/f'{cid}.safetensors')
        assert mb['pieces'] == 2 and mb['frames'] == 3 and a['ws'].shape == b['ws'].shape == (3, 6, 32)
        assert (a['ws'] - b['ws']).abs().max() < 1e-3 and (a['lpips'] - b['lpips']).abs().max() < 1e-4
        assert a['loss0'].shape == b['loss0'].shape                                 # frame 0's curve, once
    assert not list((runs['two']/'latents'/'.pieces').glob('*'))                    # joined, then gone
    rows = read_jsonl(runs['two']/'latents'/'invert_log.jsonl')
    assert sorted(r['piece'] for r in rows if r['status'] == 'piece') == [[0, 2], [0, 2], [2, 3], [2, 3]]
    assert sorted(r['clip'] for r in rows if r['status'] == 'done') == ['c0', 'c1']
    # stopped: c0's first piece is there (as a killed run leaves it), a piece of another cut too; the rest is done on resume
    st = runs['stopped']/'latents'/'.pieces'; st.mkdir(parents=True)
    shutil.copy(runs['one']/'latents'/'c0.safetensors', st/'c0@0-1.safetensors')  # (another cut: 3 workers)
    t, m = load_tensors(runs['one']/'latents'/'c0.safetensors')
    from a2v.core import save_tensors
    save_tensors(st/'c0@0-2.safetensors', {k: v[:2] if k != 'loss0' else v for k, v in t.items()}, dict(m, frames=2, piece=[0, 2]))
    again = invert_run(runs['stopped'], c2, progress=False, workers=2, clip_ids=['c0'])
    assert again['inverted'] == ['c0'] and again['frames'] == 1                      # only frame 2 was left
    assert not list(st.glob('*'))
    c, mc = load_tensors(runs['stopped']/'latents'/'c0.safetensors')
    assert mc['pieces'] == 2 and (c['ws'] - t['ws']).abs().max() < 1e-3
