"Crop throughput in source frames per second (`make bench` calls `bench()`)."
import os, tempfile, time
import numpy as np
from pathlib import Path

def _one(what, video, out, cfg, n_source, workers=1) -> list[dict]:
    "Wall-clock throughput, and throughput per CPU-second (less sensitive to a busy machine)."
    from a2v.crop import crop_videos
    t, c = time.perf_counter(), time.process_time()
    rows = crop_videos([video], out, cfg, workers=workers, progress=False)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    assert rows[0]['status'] == 'kept', rows[0]
    return [{'what': what, 'value': round(n_source / dt, 1), 'unit': 'source frames/s'},
            {'what': what + ' (CPU time)', 'value': round(n_source / dc, 1), 'unit': 'source frames/CPU-s'}]

def bench() -> list[dict]:
    "Crop one synthetic talking-head video per preset (paper: 1280×720 at 30 fps, 256² crops; tiny: 640×360, 64²)."
    import torch
    from a2v.core import get_config
    from a2v.crop import _synth_video, _detector
    from a2v.media import probe
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        hd, sd = d/'hd.mp4', d/'sd.mp4'
        _synth_video(hd, size=(1280, 720), fps=30, seconds=4.0, faces=((0, 260, (300, 0), (420, 20)),))
        _synth_video(sd, size=(640, 360), fps=25, seconds=4.0, faces=((1, 110, (200, 60), (260, 80)),))
        devices = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])
        for dev in devices:
            for name, video, preset in [('paper preset, 1280×720 30 fps → 256²', hd, 'paper'),
                                        ('tiny preset, 640×360 25 fps → 64²', sd, 'tiny')]:
                cfg = get_config(preset, device=dev)
                c = cfg.crop
                info = probe(video)                                     # load and warm MTCNN outside the timing
                _detector(max(12, c.min_face // 2), dev, c.batch)(np.zeros((1, info.height, info.width, 3), np.uint8))
                rows += _one(f'crop, {name}, {dev}', video, d/f'{preset}-{dev}', cfg, info.n_frames)
    return rows

if __name__ == '__main__':
    for r in bench(): print(r)
