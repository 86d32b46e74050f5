"""Benchmarks of the latent motion model: training samples/s of the VAE and Embed2Lat (tiny and paper sizes), audio
embedding speed. One torch thread by default: on the shared 2-core machines two threads ran 10-40x slower whenever
other work was running."""
import tempfile, time
from pathlib import Path
import torch
from a2v.core import get_config
from a2v.vae import LatentVAE, vae_config, vae_loss, fit
from a2v.embed2lat import Embed2Lat, embed2lat_config, embed2lat_loss, collate
from a2v.audio import embed_audio, load_audio_encoder

class _Frames(torch.utils.data.Dataset):
    def __init__(self, x): self.x = x
    def __len__(self): return len(self.x)
    def __getitems__(self, idx): return self.x[torch.as_tensor(idx)]

class _Clips(torch.utils.data.Dataset):
    def __init__(self, items): self.items = items
    def __len__(self): return len(self.items)
    def __getitems__(self, idx): return collate([self.items[i] for i in idx])

def _vae(preset, w_dim, n, epochs):
    c = get_config(preset).vae
    mc = vae_config(c, w_dim)
    torch.manual_seed(0)
    data = _Frames(torch.randn(n, mc['in_dim']))
    with tempfile.TemporaryDirectory() as d:
        r = fit(LatentVAE(**mc), lambda m, x: vae_loss(m, x, c.beta), data, None, Path(d), mc, epochs=epochs,
                lr=c.lr, batch_size=min(c.batch_size, n), progress=False)
    return {'what': f'VAE training, {preset} sizes (in {mc["in_dim"]}, batch {min(c.batch_size, n)})',
            'value': round(r['samples_per_s'], 1), 'unit': 'frames/s'}

def _e2l(preset, in_dim, latent, n_clips, seconds, batch, epochs):
    c = get_config(preset).embed2lat
    mc = embed2lat_config(c, in_dim, latent)
    torch.manual_seed(0)
    T, F = int(50 * seconds) - 1, int(25 * seconds)
    data = _Clips([(torch.randn(T, in_dim), torch.randn(F, latent)) for _ in range(n_clips)])
    with tempfile.TemporaryDirectory() as d:
        r = fit(Embed2Lat(**mc), embed2lat_loss, data, None, Path(d), mc, epochs=epochs, lr=c.lr, batch_size=batch,
                progress=False)
    return {'what': f'Embed2Lat training, {preset} sizes ({c.num_layers}×{c.hidden_size}, {seconds:g} s clips, batch {batch})',
            'value': round(r['samples_per_s'], 2), 'unit': 'clips/s'}

def _audio(preset):
    cfg = get_config('tiny', device='cpu')
    if preset == 'paper': cfg.audio.tiny = {}            # wav2vec2-base structure, random weights (no download)
    enc = load_audio_encoder(cfg)
    x = torch.randn(16000 * 10).numpy() * 0.1
    embed_audio(x[:16000], enc, cfg)
    t = time.perf_counter(); embed_audio(x, enc, cfg); dt = time.perf_counter() - t
    return {'what': f'audio embedding, {"wav2vec2-base structure" if preset == "paper" else "tiny"} encoder',
            'value': round(10 / dt, 1), 'unit': 'audio s/s'}

def bench(threads:int=1) -> list[dict]:
    torch.set_num_threads(threads)
    return [_vae('tiny', 128, 10000, 2), _vae('paper', 512, 10000, 2),
            _e2l('tiny', 96, 16, 16, 4.0, 16, 2), _e2l('paper', 768, 96, 2, 4.0, 2, 1),
            _audio('tiny'), _audio('paper')]

if __name__ == '__main__':
    import sys
    for r in bench(int(sys.argv[1]) if len(sys.argv) > 1 else 1): print(f"{r['what']:70s} {r['value']:>10} {r['unit']}")
