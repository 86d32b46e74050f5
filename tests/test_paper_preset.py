"""The paper preset's code path at the paper's shapes, end to end, through the stage notebooks, without downloads.

A generator built in-process with the official r-256 layout (16 ws of 512, 256 px; narrower channels so that 2 CPU
cores can invert it) and written as an NVIDIA-format network pickle (read by the allow-listed loader), a Wav2Vec2 with the *base* config and random weights saved to a temp folder, the paper's VAE
(1536 → 768 → 384 → 192 → 96) and Embed2Lat (12 layers × 768): `a2v pipeline --preset paper --data DIR` runs every stage
notebook with papermill, from a folder of 720p speech videos whose faces pass the paper's 200-px rule, to an H.264 + AAC
mp4, Figs. 2–4 and metrics.json. Every paper number is kept except steps and epochs, cut with `--set`."""
import json, os, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

def _a2v(*args, timeout=2400):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'HF_HUB_OFFLINE': '1', 'TRANSFORMERS_OFFLINE': '1', 'A2V_OFFLINE': '1'}
    r = subprocess.run([sys.executable, '-m', 'a2v.cli', *map(str, args)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env=env)
    assert r.returncode == 0, f"a2v {' '.join(map(str, args))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r

def _upscale(src, dst, truth:dict, height:int=720, min_face:int=200):
    "Sample clip `src` scaled up to at least `height` px high, and so that its face is well over `min_face` px: `dst`."
    from PIL import Image
    from a2v.media import read_video, load_audio, write_video
    k = max(height / truth['height'], 1.3 * min_face / truth['face_size_px'])
    W, H = (round(truth['width'] * k / 2) * 2, round(truth['height'] * k / 2) * 2)
    clip = read_video(src, fps=truth['fps'])
    big = (np.asarray(Image.fromarray(f).resize((W, H), Image.BICUBIC)) for f in clip.frames)
    write_video(dst, big, fps=truth['fps'], audio=load_audio(src), sr=16000)
    return W, H

@pytest.fixture(scope='module')
def paper_run(tmp_path_factory):
    from transformers import Wav2Vec2Config, Wav2Vec2Model
    from a2v.stylegan3 import Generator
    from nvidia_pickle import write_nvidia_style_pickle
    d = tmp_path_factory.mktemp('paper')
    torch.manual_seed(0)
    kwargs = dict(z_dim=512, c_dim=0, w_dim=512, img_resolution=256, img_channels=3, mapping_kwargs=dict(num_layers=2),
                  channel_base=512, channel_max=16, conv_kernel=1, use_radial_filters=True, lrelu_upsampling=1,
                  magnitude_ema_beta=0.5 ** (32 / 20e3))     # NVIDIA's r-256 kwargs (train.py), narrower, lrelu ×1
    G = Generator(**kwargs)
    assert (G.num_ws, G.w_dim, G.img_resolution) == (16, 512, 256)
    write_nvidia_style_pickle(G, kwargs, d/'network-snapshot-r256.pkl')
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(d/'wav2vec2-base')                       # base config, random init
    _a2v('sample-data', '--out', d/'data', '--clips', 2, '--no-bad', '--set', 'sample_data.seconds=[1.2, 1.4]')
    (d/'videos').mkdir()
    for t in sorted((d/'data'/'truth').glob('clip*.json')):
        truth = json.loads(t.read_text())
        W, H = _upscale(d/'data'/truth['video'], d/'videos'/f"{truth['id']}.mp4", truth)
        assert H >= 720 and truth['face_size_px'] * H / truth['height'] > 200
    sets = ['generator.source=' + str(d/'network-snapshot-r256.pkl'), 'audio.model=' + str(d/'wav2vec2-base'),
            'invert.steps_first=2', 'invert.steps_next=1', 'vae.epochs=2', 'embed2lat.epochs=1',   # steps and epochs only,
            'render.min_face_score=0']   # and no face check: random stand-in weights make no faces
    run = d/'run'
    _a2v('pipeline', '--preset', 'paper', '--data', d/'videos', '--run', run, *[a for s in sets for a in ('--set', s)])
    return run

@pytest.mark.slow
def test_paper_shapes_end_to_end(paper_run):
    from a2v.core import RunDir, load_tensors
    from a2v.media import probe
    from a2v.vae import load_vae
    from a2v.embed2lat import load_embed2lat
    rd = RunDir(paper_run)
    cfg = rd.load_config()
    assert cfg.preset == 'paper' and cfg.render.magnify == 500 and cfg.crop.resolution == 256 and cfg.crop.min_face == 200
    for nb in ('05_crop', '13_invert', '14_vae', '15_audio', '16_embed2lat', '18_render'):   # papermill ran the lessons
        assert (paper_run/'notebooks'/f'{nb}.ipynb').exists(), nb
    kept = rd.clip_ids()
    assert len(kept) >= 2
    for cid in kept:
        ws = load_tensors(rd.latents(cid))[0]['ws']
        e = load_tensors(rd.audio(cid))[0]['e']
        assert ws.shape[1:] == (16, 512) and torch.isfinite(ws).all()
        assert e.shape[1] == 768 and abs(len(e) / 50 - len(ws) / 25) < 0.1
    vae = load_vae(paper_run)
    assert vae.model.in_dim == 1536 and vae.model.hidden == (768, 384, 192) and vae.latent_dim == 96
    model, meta = load_embed2lat(paper_run)
    assert meta['config']['hidden_size'] == 768 and meta['config']['num_layers'] == 12
    for mode in ('paper', 'calibrated'):
        info = probe(paper_run/'renders'/f'demo_{mode}.mp4')
        assert info.has_video and info.has_audio and info.width == info.height == 256 and abs(info.fps - 25) < 1e-3
    m = json.loads((paper_run/'metrics.json').read_text())
    assert m['renders']['paper']['magnify'] == 500
    for f in ('fig2_inversion.png', 'fig3_vae.png', 'fig4_full_flow.png', 'fig4_full_flow_calibrated.png'):
        assert (paper_run/'figures'/f).exists(), f
    assert (paper_run/'renders'/'heldout_photo.png').exists()      # §4.5: a held-out clip's frame, another's speech
