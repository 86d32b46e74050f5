"Tests of a2v.vae: Δw, normalisation, VAE shapes, the shared training loop (resume, determinism, DDP), the stage."
import json, os, shutil, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
from a2v.core import get_config, RunDir, load_tensors, MissingStageOutputError
from a2v.vae import (delta_w, apply_delta, code_stats, normalise, denormalise, split_clips, DeltaWDataset, LatentVAE,
                     vae_config, vae_loss, fit, train_vae, load_vae, load_mu, encode_clip, make_synthetic_run)

torch.set_num_threads(1)

def _cfg(**kw):
    return get_config('tiny', **{'vae.epochs': 6, 'vae.batch_size': 64, 'vae.val_fraction': 0.34, **kw})

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return make_synthetic_run(tmp_path_factory.mktemp('vae')/'run', n_clips=6, w_dim=16, seconds=(1.0, 2.0), audio=False)

def test_delta_w_and_back():
    ws = torch.randn(7, 16, 12)
    d = delta_w(ws, (5, 6, 7))
    assert d.shape == (7, 36) and d[0].abs().max() == 0
    back = apply_delta(ws[0], d, (5, 6, 7))
    assert torch.allclose(back[:, 5:8], ws[:, 5:8], atol=1e-6)
    assert torch.equal(back[:, :5], ws[:1, :5].expand(7, -1, -1))

def test_normalisation_round_trip_and_train_only_stats(run):
    split = split_clips(RunDir(run).clip_ids(), 0.34, seed=0)
    tr = DeltaWDataset(run, split['train'], (5, 6, 7))
    va = DeltaWDataset(run, split['val'], (5, 6, 7), stats=tr.stats)
    assert va.stats is tr.stats
    assert tr.stats['n'] == tr.raw.numel() and code_stats([tr.raw, va.raw])['n'] > tr.stats['n']
    assert torch.allclose(denormalise(normalise(va.raw, tr.stats), tr.stats), va.raw, atol=1e-5)
    assert abs(tr.x.mean().item()) < 1e-4 and abs(tr.x.std(unbiased=False).item() - 1) < 1e-3

def test_split_by_clip_is_seeded_and_disjoint():
    ids = [f'c{i}' for i in range(20)]
    a, b = split_clips(ids, 0.1, seed=3), split_clips(ids, 0.1, seed=3)
    assert a == b and len(a['val']) == 2 and not set(a['train']) & set(a['val'])
    assert split_clips(ids, 0.1, seed=4) != a
    assert split_clips(['x'], 0.5)['val'] == []

def test_vae_shapes_paper_and_tiny():
    for preset, w_dim in (('paper', 512), ('tiny', 128)):
        c = get_config(preset).vae
        m = LatentVAE(**vae_config(c, w_dim)).eval()
        recon, mu, logvar = m(torch.randn(3, len(c.layers) * w_dim))
        assert recon.shape == (3, len(c.layers) * w_dim) and mu.shape == logvar.shape == (3, c.latent_dim)
    paper = LatentVAE(**vae_config(get_config('paper').vae, 512))
    assert [l.in_features for l in paper.encoder if isinstance(l, torch.nn.Linear)] == [1536, 768, 384]
    assert paper.to_mu.in_features == 192 and paper.to_mu.out_features == 96
    assert [l.out_features for l in paper.decoder if isinstance(l, torch.nn.Linear)] == [192, 384, 768, 1536]

def _fit(out, epochs, seed=0):
    torch.manual_seed(seed)
    x = torch.randn(300, 24)
    ds = torch.utils.data.TensorDataset(x)
    class D(torch.utils.data.Dataset):
        def __len__(self): return len(x)
        def __getitems__(self, idx): return x[torch.as_tensor(idx)]
    torch.manual_seed(seed); m = LatentVAE(24, (16, 8, 8), 4)
    return fit(m, lambda m, b: vae_loss(m, b, 1.0), D(), D(), out, {'in_dim': 24, 'hidden': [16, 8, 8], 'latent_dim': 4},
               epochs=epochs, lr=1e-2, batch_size=32, seed=seed, progress=False, device='cpu')

def test_fit_resume_equals_uninterrupted_and_seeded(tmp_path):
    a = _fit(tmp_path/'a', 4)
    _fit(tmp_path/'b', 2); b = _fit(tmp_path/'b', 4)
    c = _fit(tmp_path/'c', 4)
    d = _fit(tmp_path/'d', 4, seed=1)
    la, lb = [h['val_loss'] for h in a['history']], [h['val_loss'] for h in b['history']]
    assert la == lb == [h['val_loss'] for h in c['history']]
    assert la != [h['val_loss'] for h in d['history']]
    wa, _ = load_tensors(tmp_path/'a'/'model.safetensors'); wb, meta = load_tensors(tmp_path/'b'/'model.safetensors')
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert meta['config']['latent_dim'] == 4 and (tmp_path/'a'/'curves.png').exists() and (tmp_path/'a'/'model.json').exists()
    assert not list((tmp_path/'a').glob('.*tmp'))             # no temp files left behind

def test_train_vae_stage(run):
    shutil.rmtree(Path(run)/'vae', ignore_errors=True)
    m = train_vae(run, _cfg(), progress=False)
    assert m['n_val_clips'] == 2 and m['val_mse'] > 0 and m['val_mse_w'] > 0
    vae = load_vae(run)
    rd = RunDir(run)
    split = json.loads((Path(run)/'vae'/'split.json').read_text())
    stats = json.loads((Path(run)/'vae'/'stats.json').read_text())
    assert stats['layers'] == list(_cfg().vae.layers)
    tr = DeltaWDataset(run, split['train'], tuple(stats['layers']))
    assert abs(stats['sigma_code'] - tr.stats['sigma_code']) < 1e-9        # stats from the train split only
    for c in rd.clip_ids():
        ws = load_tensors(rd.latents(c))[0]['ws']
        assert torch.allclose(load_mu(run, c), encode_clip(vae, ws), atol=1e-5)
        assert vae.reconstruct(ws[0], delta_w(ws, vae.layers)).shape == ws.shape
    t0 = (Path(run)/'vae'/'model.safetensors').stat().st_mtime_ns
    assert train_vae(run, _cfg(), progress=False) == m                     # finished: nothing is redone
    assert (Path(run)/'vae'/'model.safetensors').stat().st_mtime_ns == t0
    m2 = train_vae(run, _cfg(**{'vae.epochs': 8}), progress=False)         # more epochs: resumes at epoch 6
    h = json.loads((Path(run)/'vae'/'history.json').read_text())
    assert [r['epoch'] for r in h] == list(range(8)) and m2['epochs'] == 8

def test_train_vae_needs_latents(tmp_path):
    (tmp_path/'manifest.jsonl').write_text('{"clip": "a", "status": "kept"}\n')
    with pytest.raises(MissingStageOutputError, match='a2v invert'): train_vae(tmp_path, _cfg(), progress=False)

@pytest.mark.slow
def test_ddp_two_processes(tmp_path, run):
    "torchrun with 2 CPU processes (gloo) trains and writes the same files as one process."
    d = tmp_path/'run'; shutil.copytree(run, d); shutil.rmtree(d/'vae', ignore_errors=True)
    script = tmp_path/'ddp.py'
    script.write_text(textwrap.dedent(f"""
        import torch; torch.set_num_threads(1)
        from a2v.core import get_config
        from a2v.vae import train_vae
        cfg = get_config('tiny', **{{'vae.epochs': 3, 'vae.batch_size': 64, 'vae.val_fraction': 0.34, 'device': 'cpu'}})
        print('RESULT', train_vae({str(d)!r}, cfg, progress=False).get('epochs'))
    """))
    r = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29517',
                        str(script)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'RESULT 3' in r.stdout
    assert (d/'vae'/'model.safetensors').exists() and (d/'vae'/'metrics.json').exists()
    assert len(list((d/'vae'/'mu').glob('*.safetensors'))) == 6
