"Benchmarks of a2v.metrics (collected by `make bench`; not a pytest file)."
import time
import numpy as np


def _rate(fn, n, reps=1):
    t = time.perf_counter()
    for _ in range(reps): fn()
    return n * reps / (time.perf_counter() - t)


def bench() -> list[dict]:
    import torch
    torch.set_num_threads(2)
    from a2v.metrics import (_toy_clip, mouth_region, mouth_opening, background_flicker, loudness_envelope,
                             lpips_distance, render_metrics, default_face_box, _lpips_model, FaceMesh, mesh_opening)
    rows = []
    opening = np.clip(np.sin(np.arange(250) / 3), 0, 1)                 # 10 s at 25 fps
    for size in (128, 256):
        clip = _toy_clip(opening, size)
        reg = mouth_region(clip)
        rows.append(dict(what=f'mouth_opening {size}² (region given)', value=_rate(lambda: mouth_opening(clip, region=reg), len(clip)), unit='frames/s'))
        rows.append(dict(what=f'background_flicker {size}²', value=_rate(lambda: background_flicker(clip, default_face_box(size, size)), len(clip)), unit='frames/s'))
        fm = FaceMesh(threads=2)
        rows.append(dict(what=f'mesh_opening {size}² (face mesh, LiteRT, 2 threads)', value=_rate(lambda: mesh_opening(clip, fm), len(clip)), unit='frames/s'))
        t = time.perf_counter(); mouth_region(clip)
        rows.append(dict(what=f'mouth_region (MTCNN on median frame) {size}²', value=time.perf_counter() - t, unit='s'))
    audio = np.random.default_rng(0).standard_normal(16000 * 600).astype(np.float32)
    rows.append(dict(what='loudness_envelope 10 min audio', value=_rate(lambda: loudness_envelope(audio), 600), unit='audio s/s'))
    lp, _ = _lpips_model('alex')
    clip = _toy_clip(opening[:32], 256)
    rows.append(dict(what='lpips_distance alex 256² (CPU, 2 threads)', value=_rate(lambda: lpips_distance(clip, clip[::-1], model=lp), 32), unit='frames/s'))
    clip = _toy_clip(opening, 128)
    t = time.perf_counter(); render_metrics(clip, audio[:len(clip) * 640])
    rows.append(dict(what='render_metrics 10 s clip 128² (no reference)', value=time.perf_counter() - t, unit='s'))
    return rows


if __name__ == '__main__':
    for r in bench(): print(f"{r['what']:50s} {r['value']:10.2f} {r['unit']}")
