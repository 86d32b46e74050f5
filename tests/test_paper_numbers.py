"""The paper preset is the paper: every number of Lai's pipeline that a2v's `paper` preset carries, each beside its §.

A change to `get_config('paper')` that moves one of these fails here with the section it contradicts.
(The tiny preset is ours to tune; the paper preset is not.)"""
import math
import pytest
import torch
from torch import nn
from a2v.core import get_config

P = get_config('paper')
W_DIM, NUM_WS = 512, 16          # §3.2: stylegan3-r-ffhqu-256x256 maps to W+ of 16 × 512

PAPER = [  # (§, what the paper says, the preset's value, the paper's value)
    ('3.1', 'MTCNN every 10 frames', round(P.crop.detect_interval_s * P.crop.fps), 10),
    ('3.1', 'faces of at least 200 × 200 px', P.crop.min_face, 200),
    ('3.1', 'crops resized to 256 × 256', P.crop.resolution, 256),
    ('3.1', 'video at 25 fps', P.crop.fps, 25),
    ('3.4', 'audio 16 kHz mono', P.crop.sample_rate, 16000),
    ('3.2', 'the generator stylegan3-r-ffhqu-256x256', P.generator.source, 'stylegan3-r-ffhqu-256x256'),
    ('3.2', 'frame 0: 1000 steps', P.invert.steps_first, 1000),
    ('3.2', 'frame 0 from a random w', P.invert.init, 'random'),
    ('3.2', 'lr 0.02 ...', P.invert.lr_first, 0.02),
    ('3.2', '... decaying to 0.01 halfway', P.invert.lr_first_end, 0.01),
    ('3.2', 'frames i > 0: 5 steps', P.invert.steps_next, 5),
    ('3.2', '... at lr 0.01', P.invert.lr_next, 0.01),
    ('3.2', '... starting from w_{i-1}', P.invert.warm_start, 'previous'),
    ('3.2', '... with no pull towards w_0', P.invert.anchor, 0.0),
    ('3.2', 'Adam, as Image2StyleGAN', P.invert.optimizer, 'adam'),
    ('3.2', 'loss = MSE + 10·LPIPS: MSE weight', P.invert.mse_weight, 1.0),
    ('3.2', 'loss = MSE + 10·LPIPS: LPIPS weight', P.invert.lpips_weight, 10.0),
    ('3.2', "Image2StyleGAN's perceptual loss (VGG)", P.invert.lpips_net, 'vgg'),
    ('3.3', 'Δw on layers 5, 6, 7', tuple(P.vae.layers), (5, 6, 7)),
    ('3.3', 'encoder 1536 → 768 → 384 → 192 → 96', (len(P.vae.layers) * W_DIM, *P.vae.hidden, P.vae.latent_dim),
     (1536, 768, 384, 192, 96)),
    ('3.3', 'MSE + KL (β = 1)', P.vae.beta, 1.0),
    ('3.3', 'batch 10 000', P.vae.batch_size, 10_000),
    ('3.3', 'lr 1e-3', P.vae.lr, 1e-3),
    ('3.3', '500 epochs', P.vae.epochs, 500),
    ('3.3', 'a constant learning rate', P.vae.schedule, 'constant'),
    ('3.4', 'Wav2Vec2 base', P.audio.model, 'facebook/wav2vec2-base'),
    ('3.4', "the last hidden state", P.audio.hidden_layer, -1),
    ('3.5', "Wav2Vec2(-base)'s transformer: width", P.embed2lat.hidden_size, 768),
    ('3.5', "... layers", P.embed2lat.num_layers, 12),
    ('3.5', "... heads", P.embed2lat.num_heads, 12),
    ('3.5', "... feed-forward width", P.embed2lat.intermediate_size, 3072),
    ('3.5', 'lr 1e-5', P.embed2lat.lr, 1e-5),
    ('3.5', 'batch 256', P.embed2lat.batch_size, 256),
    ('3.5', 'one Embed2Lat', P.embed2lat.members, 1),
    ('4.4', 'μ\' magnified ×500', P.render.magnify, 500),
    ('4.4', 'μ\' used as it comes (no smoothing)', P.render.smooth_frames, 0),
]

@pytest.mark.parametrize('section, says, ours, paper', PAPER, ids=[f'§{s} {w}' for s, w, _, _ in PAPER])
def test_paper_preset_is_the_paper(section, says, ours, paper):
    ok = math.isclose(ours, paper, rel_tol=1e-9) if isinstance(paper, float) else ours == paper
    assert ok, f"§{section} ({says}): the paper preset has {ours!r}, the paper {paper!r}"

def test_paper_vae_is_built_as_the_paper_says():
    "§3.3: 1536 → 768 → 384 → 192 → μ, log σ² of 96; GELU; the decoder mirrors it back to 1536."
    from a2v.vae import LatentVAE
    vae = LatentVAE(len(P.vae.layers) * W_DIM, P.vae.hidden, P.vae.latent_dim)
    enc = [m.out_features for m in vae.encoder if isinstance(m, nn.Linear)]
    dec = [m.out_features for m in vae.decoder if isinstance(m, nn.Linear)]
    assert enc == [768, 384, 192] and vae.to_mu.out_features == vae.to_logvar.out_features == 96
    assert dec == [192, 384, 768, 1536]
    assert {type(m) for m in [*vae.encoder, *vae.decoder] if not isinstance(m, nn.Linear)} == {nn.GELU}

def test_paper_embed2lat_pools_50_per_second_to_25():
    "§3.5: AdaptiveAvgPool1d from the audio's 50·T steps to the video's 25·T, then Linear 768 → 96."
    from a2v.embed2lat import Embed2Lat
    c = P.embed2lat
    m = Embed2Lat(in_dim=768, hidden_size=c.hidden_size, num_layers=1, num_heads=c.num_heads,   # one layer: the
                  intermediate_size=c.intermediate_size, conv_pos=c.conv_pos,                  # shapes, not the cost
                  conv_pos_groups=c.conv_pos_groups, dropout=0.0, latent_dim=P.vae.latent_dim).eval()
    assert (m.head.in_features, m.head.out_features) == (768, 96)
    T = 2                                                       # seconds
    with torch.no_grad(): mu = m(torch.randn(1, 50 * T, 768), n_frames=round(P.crop.fps * T))
    assert mu.shape == (1, 25 * T, 96)
