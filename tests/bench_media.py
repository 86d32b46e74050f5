"Benchmarks of a2v.media: decode and mp4-write throughput of a 10 s 720p clip, loading 60 s of 44.1 kHz stereo."
import tempfile, time
from pathlib import Path

import numpy as np

from a2v.media import iter_frames, load_audio, probe, save_wav, write_video

def _frames(n:int, w:int=1280, h:int=720, distinct:int=25):
    "Moving gradients and a bouncing square (something like real footage to encode), `distinct` of them cycled."
    y, x = np.mgrid[0:h, 0:w]
    base = []
    for i in range(distinct):
        f = np.empty((h, w, 3), np.uint8)
        f[..., 0] = (x // 2 + 8 * i) % 256; f[..., 1] = (y // 2 + 4 * i) % 256; f[..., 2] = ((x + y) // 8 + i) % 256
        cx = int((w - 200) * abs(np.sin(i / distinct * np.pi))); f[200:400, cx:cx + 200] = (250, 240, 220)
        base.append(f)
    return [base[i % distinct] for i in range(n)]

def bench() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d); n = 250                                             # 10 s at 25 fps
        frames = _frames(n)                                              # made before timing (25 distinct, cycled)
        audio = (0.1 * np.sin(np.arange(10 * 16000) * 0.07)).astype(np.float32)
        t = time.perf_counter(); p = write_video(d / 'clip.mp4', frames, 25, audio=audio, sr=16000)
        dt = time.perf_counter() - t
        rows.append({'what': 'write mp4 1280×720, 10 s, H.264 crf 18 + AAC', 'value': round(n / dt, 1), 'unit': 'frames/s',
                     'note': 'x264 preset medium, all cores'})
        assert probe(p).n_frames == n
        t = time.perf_counter(); k = sum(1 for _ in iter_frames(p, fps=25)); dt = time.perf_counter() - t
        assert k == n
        rows.append({'what': 'decode mp4 1280×720 → RGB at 25 fps, 10 s', 'value': round(n / dt, 1), 'unit': 'frames/s'})
        t = time.perf_counter(); k = sum(1 for _ in iter_frames(p, fps=10)); dt = time.perf_counter() - t
        assert k == 100
        rows.append({'what': 'decode mp4 1280×720 resampled 25 → 10 fps (source frames/s)', 'value': round(n / dt, 1), 'unit': 'frames/s'})
        sr, sec = 44100, 60
        tt = np.arange(sec * sr) / sr
        st = np.stack([0.3 * np.sin(2 * np.pi * 220 * tt), 0.3 * np.sin(2 * np.pi * 330 * tt)], 1)
        save_wav(d / 'long.wav', st, sr)
        t = time.perf_counter(); x = load_audio(d / 'long.wav', sr=16000); dt = time.perf_counter() - t
        assert len(x) == sec * 16000
        rows.append({'what': 'load_audio 60 s wav 44.1 kHz stereo → 16 kHz mono', 'value': round(dt * 1000, 1), 'unit': 'ms'})
        aac = write_video(d / 'talk.mp4', _frames(10 * 25, 64, 64, 1), 25, audio=x, sr=16000)
        t = time.perf_counter(); load_audio(aac, sr=16000); dt = time.perf_counter() - t
        rows.append({'what': 'load_audio 10 s AAC (mp4) 16 kHz', 'value': round(dt * 1000, 1), 'unit': 'ms'})
    return rows

if __name__ == '__main__':
    for r in bench(): print(r)
