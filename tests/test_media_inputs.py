"""Hostile-but-fair inputs to a2v.media (issue 35): impossible sample rates and durations refused from the header, NaN
speech named, opposite-phase stereo not averaged to silence, non-regular files named, EXIF-rotated photos upright."""
import io, os, struct, subprocess, sys, threading, time, warnings, wave
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from a2v.core import BadInputError
from a2v.media import (MAX_AUDIO_SECONDS, SAMPLE_PHOTOS, _decode_audio, load_audio, load_image, probe, read_video,
                       sample_photo)

SR = 16000

def sine(seconds:float=1.0, sr:int=SR, f:float=220.0, amp:float=0.3) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * f * np.arange(int(seconds * sr)) / sr)).astype(np.float32)

def wav_claiming(path, sr:int, n:int, channels:int=1) -> Path:
    "A 16-bit WAV whose header says `n` samples at `sr` Hz; the file is that long but sparse (zeros, no disk used)."
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(channels); w.setsampwidth(2); w.setframerate(max(sr, 1)); w.writeframes(b'')
    b = bytearray(Path(path).read_bytes()); i = b.find(b'data'); size = 2 * channels * n
    b[i + 4:i + 8] = struct.pack('<I', size); b[4:8] = struct.pack('<I', i + size)
    with open(path, 'wb') as f: f.write(b); f.truncate(i + 8 + size)
    return Path(path)

def encode(path, x:np.ndarray, codec:str='pcm_f32le', fmt:str|None=None, sr:int=SR, seekable:bool=True) -> Path:
    "Encode (C, T) float audio with PyAV (NaN and inf kept by pcm_f32le); `seekable=False` writes as to a pipe."
    class Pipe(io.RawIOBase):
        def __init__(self, f): self.f = f
        def writable(self): return True
        def write(self, b): return self.f.write(b)
    layout = ('mono', 'stereo')[len(x) - 1]
    with open(path, 'wb') as raw, av.open(raw if seekable else Pipe(raw), 'w', format=fmt or Path(path).suffix[1:]) as c:
        a = c.add_stream(codec, rate=sr, layout=layout)
        f = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, np.float32), format='fltp', layout=layout)
        f.sample_rate, f.pts = sr, 0
        for p in [*a.encode(f), *a.encode(None)]: c.mux(p)
    return Path(path)

def fails(fn, *args, **kw) -> str:
    "The one-line message of the `BadInputError` that `fn(*args)` raises."
    with pytest.raises(BadInputError) as e: fn(*args, **kw)
    msg = str(e.value); assert '\n' not in msg, msg
    return msg

# ---------------------------------------------------------------- 1. sample rate and duration, from the header

def test_one_hz_header_refused_at_once_in_bounded_memory(tmp_path):
    "The issue's repro: 98 KB whose header says 1 Hz (13.6 h); it used to take over 6 GB and minutes."
    p = wav_claiming(tmp_path/'onehz.wav', 1, 49_000)
    assert p.stat().st_size < 100_000
    code = ('import re, sys, time; from a2v.media import load_audio; t = time.time()\n'
            'try: load_audio(sys.argv[1])\nexcept Exception as e: print(e)\n'
            'print(time.time() - t, int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) // 1024)')
    out = subprocess.run([sys.executable, '-c', code, str(p)], capture_output=True, text=True, timeout=60).stdout.splitlines()
    assert out[0] == f'{p}: sample rate 1 Hz is outside 4–192 kHz (a damaged header?); export the audio again at 16 or 48 kHz'
    seconds, rss_mb = float(out[1].split()[0]), int(out[1].split()[1])
    assert seconds < 2.0 and rss_mb < 500, (seconds, rss_mb)

@pytest.mark.parametrize('sr,ok', [(3999, False), (4000, True), (8000, True), (192000, True), (192001, False), (400000, False)])
def test_sample_rate_range(tmp_path, sr, ok):
    p = wav_claiming(tmp_path/f'r{sr}.wav', sr, 2000)
    if ok: assert len(load_audio(p, sr=SR)) == round(2000 * SR / sr)
    else: assert f'sample rate {sr} Hz is outside 4–192 kHz' in fails(load_audio, p)

def test_duration_over_the_maximum_refused_before_decoding(tmp_path):
    p = wav_claiming(tmp_path/'long.wav', SR, int(2.5 * 3600 * SR))            # 288 MB, sparse
    t = time.time(); msg = fails(load_audio, p)
    assert time.time() - t < 1.0                                                 # decoding it took 31 s
    assert msg == f'{p}: 2.5 h of audio to load, over the 2.0 h maximum (MAX_AUDIO_SECONDS); cut it shorter, e.g. ffmpeg -i IN -t 7200 OUT'
    assert MAX_AUDIO_SECONDS == 7200
    assert len(load_audio(p, start=3600.0, end=3601.0)) == SR                   # a window of it is fine (seek, then stop)
    assert '1.0 s of audio to load, over the 0.5 s maximum' in fails(load_audio, p, start=10.0, end=11.0, max_seconds=0.5)

def test_window_decoding_stops_at_its_end(tmp_path):
    "A window near the start of a long file decodes only that far: fast, and the same samples as before."
    p = wav_claiming(tmp_path/'long.wav', SR, int(1.9 * 3600 * SR))
    t = time.time(); x = load_audio(p, start=0.0, end=2.0)
    assert len(x) == 2 * SR and time.time() - t < 2.0                              # to the file's end: 25 s

def test_duration_the_header_does_not_state(tmp_path):
    "NUT written to a pipe has no duration in its header: the decoder itself stops at the maximum."
    p = encode(tmp_path/'a.nut', sine(3.0)[None], 'pcm_s16le', seekable=False)
    with av.open(str(p)) as c: assert not c.streams.audio[0].duration and not c.duration
    assert len(load_audio(p)) == 3 * SR
    msg = fails(load_audio, p, max_seconds=0.5)
    assert msg.startswith(f'{p}: more audio than the 0.5 s maximum (MAX_AUDIO_SECONDS), which its header did not show')

# ---------------------------------------------------------------- 2. NaN and inf

def test_nan_samples_named(tmp_path):
    x = sine(); x[8000:8100] = np.nan
    p = encode(tmp_path/'nan.wav', x[None])
    msg = fails(load_audio, p)
    assert msg == f'{p}: 100 NaN samples (the first at 0.50 s); audio must be finite numbers: export it again'

def test_inf_and_nan_in_one_channel_of_stereo(tmp_path):
    x = np.stack([sine(), sine()]); x[1, 1600] = np.inf; x[0, 3200:3203] = np.nan
    assert 'stereo.wav: 3 NaN and 1 infinite samples (the first at 0.10 s)' in fails(load_audio, encode(tmp_path/'stereo.wav', x))

def test_nan_outside_the_window_is_not_reported(tmp_path):
    x = sine(6.0); x[5 * SR:5 * SR + 10] = np.nan
    p = encode(tmp_path/'late_nan.wav', x[None])
    assert len(load_audio(p, start=2.0, end=3.0)) == SR
    assert 'the first at 5.00 s' in fails(load_audio, p, start=2.0)

def test_nan_speech_fails_before_render_work(tmp_path):
    "What a render gets: the same line, from the speech check that runs before any model is loaded."
    from a2v.render import Renderer
    x = sine(); x[100] = np.nan
    assert 'nan.wav: 1 NaN samples' in fails(Renderer._speech, encode(tmp_path/'nan.wav', x[None]))

# ---------------------------------------------------------------- 3. stereo whose channels cancel

def load_warned(p, **kw):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); x = load_audio(p, **kw)
    return x, [str(m.message) for m in w]

@pytest.mark.parametrize('right,want', [(-1.0, 'left'), (-2.0, 'right'), (-0.8, 'left')])
def test_opposite_phase_takes_the_louder_channel(tmp_path, right, want):
    s = sine(); p = encode(tmp_path/'inv.wav', np.stack([s, right * s]))
    x, w = load_warned(p)
    np.testing.assert_allclose(x, s if want == 'left' else np.clip(right * s, -1, 1), atol=1e-6)
    assert len(w) == 1 and w[0].startswith(f'{p}: its channels cancel when averaged') and w[0].endswith(f'using the {want} channel alone')

@pytest.mark.parametrize('right', [1.0, 0.5, 0.0, -0.3])   # mean keeps 100 %, 56 %, 25 %, 12 % of the left's energy
def test_ordinary_stereo_keeps_the_mean_exactly(tmp_path, right):
    s = sine(); lr = np.stack([s, right * s + 0.05 * sine(f=1234.0)])
    x, w = load_warned(encode(tmp_path/'st.wav', lr))
    assert w == [] and np.array_equal(x, np.clip(lr.mean(0), -1, 1).astype(np.float32))

def test_silent_or_extreme_stereo_gives_no_numpy_warning(tmp_path):
    "Silence (0 / 0) and a sample of 3e38 in one channel (inf energy) leave the mean alone, with no RuntimeWarning."
    big = np.stack([sine(), sine()]); big[0, 100] = 3e38
    for name, x in [('silent.wav', np.zeros((2, SR), np.float32)), ('big.wav', big)]:
        y, w = load_warned(encode(tmp_path/name, x))
        assert w == [] and len(y) == SR and np.isfinite(y).all()

def test_opposite_phase_in_a_video_window_stays_in_sync(tmp_path):
    "AAC stereo in an mp4, L = −R, loaded as a window: the louder channel, at the right place in time."
    from a2v.media import write_video
    s = np.concatenate([np.zeros(SR // 2, np.float32), sine(2.5, f=330.0)])          # 3 s, sound from 0.5 s
    p = tmp_path/'v.mp4'
    with av.open(str(p), 'w') as c:
        v = c.add_stream('libx264', rate=25); v.width, v.height, v.pix_fmt = 32, 32, 'yuv420p'
        a = c.add_stream('aac', rate=SR, layout='stereo')
        for i in range(75):
            for k in v.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i, np.uint8), format='rgb24')): c.mux(k)
        f = av.AudioFrame.from_ndarray(np.stack([s, -s]), format='fltp', layout='stereo'); f.sample_rate, f.pts = SR, 0
        for k in [*a.encode(f), *a.encode(None), *v.encode(None)]: c.mux(k)
    full, w = load_warned(p)
    assert len(w) == 1 and np.sqrt(np.mean(full[SR:] ** 2)) > 0.15                   # not silence (0.3 / √2 = 0.21)
    win, w = load_warned(p, start=1.2, end=2.0)
    assert len(w) == 1 and len(win) == round(0.8 * SR)
    assert np.abs(win - full[round(1.2 * SR):round(2.0 * SR)]).max() < 1e-3

# ---------------------------------------------------------------- 4. not a regular file

@pytest.mark.parametrize('fn', [load_audio, load_image, probe, read_video])
def test_dev_zero_is_not_a_regular_file(fn):
    assert fails(fn, '/dev/zero') == '/dev/zero: not a regular file but a character device; give a media file'

def test_fifo_refused_without_hanging(tmp_path):
    p = tmp_path/'speech.wav'; os.mkfifo(p)
    done = {}
    def go():
        try: load_audio(p)
        except BadInputError as e: done['msg'] = str(e)
    t = threading.Thread(target=go, daemon=True); t.start(); t.join(5)
    assert done.get('msg') == f'{p}: not a regular file but a FIFO (named pipe); give a media file'

def test_symlink_to_a_file_still_loads(tmp_path):
    p = encode(tmp_path/'a.wav', sine()[None]); (tmp_path/'link.wav').symlink_to(p)
    assert len(load_audio(tmp_path/'link.wav')) == SR

# ---------------------------------------------------------------- 5. EXIF orientation

@pytest.mark.parametrize('orientation,stored', [(3, lambda a: a[::-1, ::-1]), (6, lambda a: np.rot90(a, 1)), (8, lambda a: np.rot90(a, -1))])
@pytest.mark.parametrize('fmt', ['jpg', 'png', 'webp', 'tif'])
def test_exif_orientation_any_format_and_downscaled(tmp_path, orientation, stored, fmt):
    up = sample_photo('grace_hopper')                                                  # (600, 512, 3) upright
    exif = Image.Exif(); exif[0x0112] = orientation
    p = tmp_path/f'photo.{fmt}'
    Image.fromarray(np.ascontiguousarray(stored(up))).save(p, exif=exif, **({'quality': 95} if fmt in ('jpg', 'webp') else {}))
    for max_side in (4096, 300):
        a = load_image(p, max_side=max_side)
        ref = np.asarray(Image.fromarray(up).resize((a.shape[1], a.shape[0]), Image.Resampling.LANCZOS))
        assert a.shape == ref.shape and np.abs(a.astype(int) - ref).mean() < 6, (max_side, np.abs(a.astype(int) - ref).mean())

def test_exif_upside_down_photo_is_seen_upright_by_the_face_detector(tmp_path):
    "Pixels stored upside down, EXIF orientation 3: the detector finds the face where it is in the upright photo."
    from a2v.render import find_faces
    up = sample_photo('grace_hopper')
    exif = Image.Exif(); exif[0x0112] = 3
    p = tmp_path/'phone.jpg'; Image.fromarray(np.ascontiguousarray(up[::-1, ::-1])).save(p, exif=exif, quality=95)
    box = find_faces(load_image(p), p)[0]
    np.testing.assert_allclose(box, SAMPLE_PHOTOS['grace_hopper'], atol=4)
    raw = find_faces(np.ascontiguousarray(up[::-1, ::-1]), 'raw')[0]                  # ignoring EXIF: the face upside down
    assert np.abs(raw - np.array(SAMPLE_PHOTOS['grace_hopper'])).max() > 50
