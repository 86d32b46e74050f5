"Fitting the tiny generator (a2v.fit_generator): resume, atomic outputs, mirrored frames."
import numpy as np
import torch
from a2v.core import load_tensors
from a2v.stylegan3 import load_generator

def test_fit_generator_resumes_and_writes_atomically(tmp_path):
    "A fit stopped after 2 steps resumes from its checkpoint; the finished generator loads and reproduces its codes."
    from a2v.core import get_config
    from a2v.core import psnr
    from a2v.fit_generator import fit_generator, fit_frames, demo_frames
    frames, _ = demo_frames(12, 32)
    arch = dict(z_dim=16, w_dim=16, img_resolution=32, channel_base=256, channel_max=16, num_layers=6, conv_kernel=1,
                use_radial_filters=True, lrelu_upsampling=1)
    cfg = get_config('tiny', **{'generator.arch': arch, 'generator.fit_steps': 5, 'generator.fit_batch': 4})
    out = tmp_path/'generator'/'generator.safetensors'
    part = fit_generator(frames, out, cfg, progress=False, stop_after=2)
    assert part == dict(finished=False, steps=2) and not out.exists()
    assert (tmp_path/'generator'/'fit_checkpoint.pt').exists()
    m = fit_generator(frames, out, cfg, progress=False)
    assert m['finished'] and m['steps'] == 5 and m['history'][0]['step'] == 1     # history kept across the resume
    assert sorted(p.name for p in out.parent.iterdir()) == ['codes.safetensors', 'fit_metrics.json', 'generator.safetensors']
    G = load_generator(out)
    ws = load_tensors(out.with_name('codes.safetensors'))[0]['ws']
    fitted = fit_frames(frames, 32, cfg.generator)                 # the tiny preset fits the frames and their mirrors
    assert len(fitted) == len(ws) == 2 * len(frames)
    x = torch.from_numpy(fitted.copy()).permute(0, 3, 1, 2).float() / 127.5 - 1
    with torch.no_grad(): assert abs(float(psnr((G.synthesis(ws) - x).square().flatten(1).mean(1), peak=2.0).mean()) - m['psnr']) < 0.01
    assert 0 <= m['lpips'] < 1 and m['psnr'] > 5


def test_fit_frames_mirror():
    "With fit_mirror the fitted set is half the frames and their mirror images, within the same frame budget."
    from a2v.core import get_config
    from a2v.fit_generator import fit_frames
    x = np.random.default_rng(0).integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    gc = get_config('tiny', **{'generator.fit_max_frames': 6, 'generator.fit_mirror': True}).generator
    f = fit_frames(x, 16, gc)
    assert f.shape == (6, 16, 16, 3) and np.array_equal(f[3:], f[:3, :, ::-1])
    gc.fit_mirror = False
    assert np.array_equal(fit_frames(x, 16, gc), x[np.linspace(0, 9, 6).round().astype(int)])
