"Tests of a2v.media on media generated here (PyAV), small and short: formats, frame rates, rotation, bad input."
import subprocess, sys, wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from a2v.core import BadInputError
from a2v.media import (MediaInfo, VideoWriter, _mp4_top_boxes, iter_frames, load_audio, load_image, probe,
                       read_video, save_wav, write_video)

SR = 16000

# ---------------------------------------------------------------- generators

def code_frame(i:int, w:int=64, h:int=48) -> np.ndarray:
    "A frame whose top half encodes `i` in 8 black/white blocks (survives lossy codecs)."
    f = np.zeros((h, w, 3), np.uint8)
    bw = w // 8
    for b in range(8):
        if (i >> b) & 1: f[:h // 2, b * bw:(b + 1) * bw] = 255
    f[h // 2:, :, 0] = (i * 7) % 256
    return f

def read_code(f:np.ndarray) -> int:
    h, w = f.shape[:2]; bw = w // 8
    return sum(int(f[:h // 2, b * bw + 2:(b + 1) * bw - 2].mean() > 128) << b for b in range(8))

def tone(seconds:float, sr:int, freq:float=440.0, channels:int=1, amp:float=0.5) -> np.ndarray:
    "(C, T) float32 sine; channel c has amplitude amp·(1 − 0.2c) so a mixdown is checkable."
    t = np.arange(int(round(seconds * sr))) / sr
    return np.stack([amp * (1 - 0.2 * c) * np.sin(2 * np.pi * freq * t) for c in range(channels)]).astype(np.float32)

def make_video(path, n:int=25, fps=25, size=(64, 48), vcodec='libx264', fmt=None, times=None, rotation=None,
               frames=None, audio=None, acodec='aac', sr=SR, faststart=False, audio_start:float=0.0):
    "Write `n` coded frames (or `frames`) with PyAV; `times` (s) gives a variable frame rate; `audio` (T,) mono."
    opts = {'movflags': '+faststart'} if faststart else {}
    c = av.open(str(path), 'w', format=fmt, options=opts)
    rate = fps if isinstance(fps, Fraction) else Fraction(fps).limit_denominator(1001)
    s = c.add_stream(vcodec, rate=rate, options={'bf': '0'} if vcodec == 'mpeg4' else {})
    s.width, s.height = size; s.pix_fmt = 'yuv420p'
    if times is not None: s.codec_context.time_base = Fraction(1, 1000)
    if rotation is not None: s.set_display_rotation(rotation)
    a = c.add_stream(acodec, rate=sr, layout='mono') if audio is not None else None
    per = len(audio) // n + 1 if audio is not None else 0              # interleave audio with the frames, as cameras do
    for i in range(n):
        vf = av.VideoFrame.from_ndarray(frames[i] if frames is not None else code_frame(i, *size), format='rgb24')
        if times is not None: vf.pts, vf.time_base = int(round(times[i] * 1000)), Fraction(1, 1000)
        else: vf.pts = i
        for p in s.encode(vf): c.mux(p)
        if a is not None and i * per < len(audio):
            af = av.AudioFrame.from_ndarray(np.asarray(audio[i * per:(i + 1) * per], np.float32)[None], format='fltp', layout='mono')
            af.sample_rate, af.pts = sr, i * per + int(round(audio_start * sr))
            for p in a.encode(af): c.mux(p)
    for p in s.encode(): c.mux(p)
    if a is not None:
        for p in a.encode(): c.mux(p)
    c.close()
    return Path(path)

def make_audio(path, x:np.ndarray, sr:int, codec:str, fmt:str|None=None, sample_fmt:str|None=None):
    "Encode (C, T) float audio with PyAV into `path`."
    layout = {1: 'mono', 2: 'stereo'}[x.shape[0]]
    c = av.open(str(path), 'w', format=fmt)
    s = c.add_stream(codec, rate=sr, layout=layout)
    if sample_fmt: s.codec_context.format = sample_fmt
    af = av.AudioFrame.from_ndarray(np.ascontiguousarray(x, np.float32), format='fltp', layout=layout)
    af.sample_rate, af.pts = sr, 0
    for p in s.encode(af): c.mux(p)
    for p in s.encode(): c.mux(p)
    c.close()
    return Path(path)

def chirp(seconds:float, sr:int, channels:int=1, amp:float=0.5) -> np.ndarray:
    "(C, T) float32 sweep 200 → 3000 Hz (not periodic, so a lag is unambiguous); channel c scaled by 1 − 0.2c."
    t = np.arange(int(round(seconds * sr))) / sr
    ph = 2 * np.pi * (200 * t + (3000 - 200) / (2 * seconds) * t ** 2)
    return np.stack([amp * (1 - 0.2 * c) * np.sin(ph) for c in range(channels)]).astype(np.float32)

def lag_and_corr(x:np.ndarray, ref:np.ndarray, max_lag:int=200) -> tuple[int, float]:
    "Best lag (samples, x relative to ref) and the normalised correlation there."
    n = min(len(x), len(ref)) - 2 * max_lag
    best = max(range(-max_lag, max_lag + 1), key=lambda l: np.dot(x[max_lag + l:max_lag + l + n], ref[max_lag:max_lag + n]))
    a, b = x[max_lag + best:max_lag + best + n], ref[max_lag:max_lag + n]
    return best, float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))

# ---------------------------------------------------------------- bad input (one-line BadInputError naming the file)

def _one_line(e, path):
    msg = str(e.value)
    assert '\n' not in msg and str(path) in msg, msg
    return msg

@pytest.mark.parametrize('fn', [probe, read_video, load_audio, load_image])
def test_missing_path(tmp_path, fn):
    p = tmp_path / 'missing.mp4'
    with pytest.raises(BadInputError) as e: fn(p)
    assert 'no such file' in _one_line(e, p)

def test_text_renamed_mp4(tmp_path):
    p = tmp_path / 'notes.mp4'; p.write_text('meeting notes\nnot a video at all\n' * 10)
    for fn in (probe, read_video, load_audio):
        with pytest.raises(BadInputError) as e: fn(p)
        assert 'text file' in _one_line(e, p)

def test_truncated_mp4_moov_missing(tmp_path):
    full = make_video(tmp_path / 'full.mp4', n=50)                       # moov written last (no faststart)
    assert _mp4_top_boxes(full)[-1] == 'moov'
    p = tmp_path / 'cut.mp4'; p.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    for fn in (probe, read_video, load_audio):
        with pytest.raises(BadInputError) as e: fn(p)
        assert 'moov atom missing' in _one_line(e, p)

def test_truncated_faststart_mp4(tmp_path):
    full = tmp_path / 'full.mp4'
    rng = np.random.default_rng(0)
    write_video(full, rng.integers(0, 256, (50, 64, 64, 3), dtype=np.uint8), 25, audio=np.zeros(2 * SR, np.float32))
    p = tmp_path / 'cut.mp4'; p.write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    with pytest.raises(BadInputError) as e: read_video(p)
    assert 'truncated' in _one_line(e, p)
    with pytest.raises(BadInputError) as e: load_audio(p)
    assert 'truncated' in _one_line(e, p)
    assert len(read_video(p, end=0.4)) == 10                             # the intact start is still readable

def test_video_without_audio(tmp_path):
    p = make_video(tmp_path / 'silent.mp4')
    assert not probe(p).has_audio
    with pytest.raises(BadInputError) as e: load_audio(p)
    assert 'no audio stream' in _one_line(e, p)

def test_audio_only_as_video(tmp_path):
    p = tmp_path / 'speech.wav'; save_wav(p, tone(0.5, SR)[0], SR)
    for fn in (read_video, lambda q: next(iter_frames(q))):
        with pytest.raises(BadInputError) as e: fn(p)
        assert 'no video stream' in _one_line(e, p)

def test_zero_length_audio(tmp_path):
    p = tmp_path / 'empty.wav'
    with wave.open(str(p), 'wb') as w: w.setnchannels(1); w.setsampwidth(2); w.setframerate(SR)
    with pytest.raises(BadInputError) as e: load_audio(p)
    assert 'empty' in _one_line(e, p)
    q = tmp_path / 'zero.wav'; q.write_bytes(b'')
    with pytest.raises(BadInputError) as e: load_audio(q)
    assert '0 bytes' in _one_line(e, q)

def test_audio_window_outside_file(tmp_path):
    p = tmp_path / 'a.wav'; save_wav(p, tone(1.0, SR)[0], SR)
    with pytest.raises(BadInputError) as e: load_audio(p, start=5.0)
    assert 'no audio between' in _one_line(e, p)

@pytest.mark.parametrize('size', [(1, 1), (12, 40)])
def test_tiny_image(tmp_path, size):
    p = tmp_path / 'dot.png'; Image.new('RGB', size).save(p)
    with pytest.raises(BadInputError) as e: load_image(p)
    assert 'at least 16 px' in _one_line(e, p)

def test_not_an_image(tmp_path):
    p = tmp_path / 'photo.jpg'; p.write_text('not a photo')
    with pytest.raises(BadInputError) as e: load_image(p)
    _one_line(e, p)

# ---------------------------------------------------------------- audio: rates, channels, formats

@pytest.mark.parametrize('sr_in,channels', [(8000, 1), (44100, 2), (48000, 2), (16000, 2)])
def test_load_audio_rates_and_stereo(tmp_path, sr_in, channels):
    x = chirp(1.0, sr_in, channels) if sr_in > 6000 else tone(1.0, sr_in, 440, channels)
    p = tmp_path / 'a.wav'; make_audio(p, x, sr_in, 'pcm_s16le')
    y = load_audio(p, sr=SR)
    assert y.dtype == np.float32 and y.ndim == 1 and len(y) == SR
    ref = (chirp(1.0, SR, channels) if sr_in > 6000 else tone(1.0, SR, 440, channels)).mean(0)   # mono = channel mean
    lag, corr = lag_and_corr(y, ref)
    assert lag == 0 and corr > 0.999
    assert abs(np.abs(y[400:-400]).max() - np.abs(ref).max()) < 0.01

@pytest.mark.parametrize('codec', ['pcm_s16le', 'pcm_s24le', 'pcm_f32le'])
def test_wav_sample_formats(tmp_path, codec):
    x = tone(0.5, 44100, 300, 2, amp=0.9)
    p = tmp_path / f'{codec}.wav'; make_audio(p, x, 44100, codec)
    y = load_audio(p, sr=SR)
    ref = load_audio(make_audio(tmp_path / 'ref.wav', x, 44100, 'pcm_f32le'), sr=SR)
    assert len(y) == 8000 and np.abs(y - ref).max() < 1e-3 and np.abs(y).max() <= 1.0

def test_float_wav_is_clipped(tmp_path):
    p = make_audio(tmp_path / 'loud.wav', tone(0.3, SR, amp=1.5), SR, 'pcm_f32le')
    y = load_audio(p)
    assert np.abs(y).max() <= 1.0 and np.abs(y).max() > 0.99

@pytest.mark.parametrize('name,codec,fmt,sr_in', [('a.flac', 'flac', None, 44100), ('a.mp3', 'libmp3lame', None, 44100),
                                                  ('a.m4a', 'aac', 'ipod', 48000), ('a.webm', 'libopus', 'webm', 48000),
                                                  ('a.mp4', 'aac', 'mp4', 44100)])
def test_compressed_audio(tmp_path, name, codec, fmt, sr_in):
    x = chirp(1.0, sr_in, 2)
    y = load_audio(make_audio(tmp_path / name, x, sr_in, codec, fmt), sr=SR)
    assert abs(len(y) - SR) <= SR * 0.03, len(y)                         # encoder padding trimmed (within 30 ms)
    lag, corr = lag_and_corr(y, chirp(1.0, SR, 2).mean(0))
    assert abs(lag) <= SR * 0.002 and corr > 0.98, (lag, corr)          # in sync to 2 ms

def test_load_audio_window_and_video_input(tmp_path):
    x = np.zeros(3 * SR, np.float32); x[int(1.5 * SR)] = 0.9; x[int(2.5 * SR)] = 0.5   # clicks at 1.5 s and 2.5 s
    p = make_video(tmp_path / 'v.mp4', n=75, audio=x)
    y = load_audio(p)
    assert abs(len(y) - 3 * SR) <= 1 and abs(np.argmax(np.abs(y)) - 1.5 * SR) < SR * 0.005
    w = load_audio(p, start=1.25, end=2.0)
    assert len(w) == round(0.75 * SR) and abs(np.argmax(np.abs(w)) - 0.25 * SR) < SR * 0.005
    w = load_audio(p, start=2.2)                                         # far enough in to seek
    assert abs(len(w) - 0.8 * SR) <= 1 and abs(np.argmax(np.abs(w)) - 0.3 * SR) < SR * 0.005

def test_audio_starting_late_stays_in_sync(tmp_path):
    x = np.zeros(SR, np.float32); x[SR // 2] = 0.9                       # click 0.5 s into a track that starts at 0.5 s
    p = make_video(tmp_path / 'late.mp4', n=50, audio=x, audio_start=0.5)
    y = load_audio(p)
    assert abs(len(y) - 1.5 * SR) <= 2 and abs(np.argmax(np.abs(y)) - 1.0 * SR) < SR * 0.005
    assert np.abs(y[:int(0.45 * SR)]).max() < 1e-3                       # silence before the track starts

def test_save_wav_roundtrip(tmp_path):
    x = tone(0.25, 22050)[0]
    p = tmp_path / 'out.wav'; save_wav(p, x, 22050)
    with wave.open(str(p)) as w: assert (w.getsampwidth(), w.getframerate(), w.getnframes()) == (2, 22050, len(x))
    assert np.abs(load_audio(p, sr=22050) - x).max() < 1e-4
    assert not list(tmp_path.glob('.*'))                                 # no temp file left

# ---------------------------------------------------------------- video: containers, rates, VFR, rotation

@pytest.mark.parametrize('name,kw', [('a.mp4', {}), ('a.mov', {'fmt': 'mov'}), ('a.mkv', {'fmt': 'matroska'}),
                                     ('a.webm', {'vcodec': 'libvpx-vp9', 'acodec': 'libopus', 'sr': 48000, 'fmt': 'webm'}),
                                     ('a.avi', {'vcodec': 'mpeg4', 'acodec': 'pcm_s16le', 'fmt': 'avi'})])
def test_containers(tmp_path, name, kw):
    sr = kw.get('sr', SR)
    p = make_video(tmp_path / name, n=25, audio=tone(1.0, sr)[0], **kw)
    info = probe(p)
    assert info.has_video and info.has_audio and (info.width, info.height) == (64, 48) and info.fps == 25
    v = read_video(p)
    assert v.frames.shape == (25, 48, 64, 3) and v.frames.dtype == np.uint8
    assert [read_code(f) for f in v.frames] == list(range(25))
    assert abs(len(load_audio(p)) - SR) <= SR * 0.07                     # mkv/avi keep the codec's last-frame padding

def _expected_sources(src_times, out_times):
    "Index of the source frame whose interval [t_i, t_i+1) covers each output time."
    return [int(np.searchsorted(src_times, t + 1e-6, 'right') - 1) for t in out_times]

@pytest.mark.parametrize('fps', [24, Fraction(30000, 1001), 30, 50, 60])
def test_frame_rates_to_25(tmp_path, fps):
    n = int(round(float(fps) * 1.2))                                    # 1.2 s of video
    p = make_video(tmp_path / 'v.mp4', n=n, fps=fps)
    assert abs(probe(p).fps - float(fps)) < 1e-3
    v = read_video(p, fps=25)
    d = n / float(fps)
    assert len(v) == int(np.floor(25 * d + 0.5)) and v.source_fps == pytest.approx(float(fps), abs=1e-3)
    np.testing.assert_allclose(v.times, np.arange(len(v)) / 25)
    assert [read_code(f) for f in v.frames] == _expected_sources(np.arange(n) / float(fps), v.times)

def test_variable_frame_rate(tmp_path):
    rng = np.random.default_rng(0)
    times = np.round(np.cumsum(np.r_[0, rng.uniform(0.015, 0.09, 39)]), 3)   # 11–66 fps, jittery
    p = make_video(tmp_path / 'vfr.mp4', n=40, times=times)
    v = read_video(p, fps=25)
    assert [read_code(f) for f in v.frames] == _expected_sources(times, v.times)
    last_d = 1 / probe(p).fps                                            # the last frame lasts one average interval
    assert abs(len(v) - 25 * (times[-1] + last_d)) <= 1

def test_start_end_max_frames_sync(tmp_path):
    x = tone(2.0, SR)[0]
    p = make_video(tmp_path / 'v.mp4', n=50, audio=x)
    v = read_video(p, start=0.52, end=1.37)
    assert len(v) == round(25 * 0.85) and v.times[0] == pytest.approx(0.52)
    assert len(load_audio(p, start=0.52, end=1.37)) == round(SR * 0.85)
    assert [read_code(f) for f in v.frames] == [int(np.floor(t * 25 + 1e-6)) for t in v.times]
    assert len(read_video(p, max_frames=7)) == 7
    assert len(list(iter_frames(p, fps=10))) == 20

@pytest.mark.parametrize('rotation', [-90, 90, 180])
def test_rotation(tmp_path, rotation):
    upright = np.zeros((64, 48, 3), np.uint8); upright[:16, :16] = (255, 0, 0)   # portrait, red corner top-left
    stored = np.ascontiguousarray(np.rot90(upright, -rotation // 90))           # what the camera stored
    h, w = stored.shape[:2]
    p = make_video(tmp_path / 'phone.mp4', n=5, size=(w, h), frames=[stored] * 5, rotation=rotation)
    info = probe(p)
    assert info.rotation == rotation % 360 and (info.width, info.height) == (48, 64)
    v = read_video(p)
    assert v.frames.shape == (5, 64, 48, 3) and v.rotation == rotation % 360
    assert v.frames[0, :16, :16, 0].mean() > 200 and v.frames[0, -16:, -16:, 0].mean() < 50

# ---------------------------------------------------------------- writing

def _stream_durations(p):
    with av.open(str(p)) as c:
        return {s.type: float(s.duration * s.time_base) for s in c.streams}

@pytest.mark.parametrize('audio_s', [1.0, 2.3, 3.5])
def test_write_video_durations_match(tmp_path, audio_s):
    frames = np.stack([code_frame(i, 63, 45) for i in range(50)])       # odd size, 2 s at 25 fps
    p = write_video(tmp_path / 'out.mp4', frames, 25, audio=tone(audio_s, SR)[0], sr=SR)
    d = _stream_durations(p)
    assert abs(d['video'] - 2.0) < 1e-6 and abs(d['audio'] - d['video']) <= 1 / 25
    with av.open(str(p)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert (v.codec_context.name, v.codec_context.pix_fmt, a.codec_context.name) == ('h264', 'yuv420p', 'aac')
        assert (v.codec_context.width, v.codec_context.height) == (64, 46)   # padded to even
    boxes = _mp4_top_boxes(p)
    assert boxes.index('moov') < boxes.index('mdat')                     # faststart
    back = read_video(p)
    assert [read_code(f[:45, :63]) for f in back.frames] == list(range(50))
    y = load_audio(p)
    assert abs(len(y) - 2 * SR) <= 1
    if audio_s < 2: assert np.abs(y[int(audio_s * SR) + 400:]).max() < 0.02    # padded with silence

def test_write_video_streaming_and_atomic(tmp_path):
    p = tmp_path / 'stream.mp4'
    with VideoWriter(p, 25, sr=SR) as w:
        for i in range(30):
            w.write(code_frame(i)); w.write_audio(tone(0.04, SR)[0])
    assert _stream_durations(p)['video'] == pytest.approx(1.2)
    assert [read_code(f) for f in read_video(p).frames] == list(range(30))
    q = tmp_path / 'broken.mp4'
    def frames():
        yield code_frame(0); raise RuntimeError('renderer crashed')
    with pytest.raises(RuntimeError): write_video(q, frames(), 25)
    assert not q.exists() and not list(tmp_path.glob('.broken*'))       # nothing half-written is left
    with pytest.raises(ValueError, match='uint8'): write_video(q, np.zeros((2, 8, 8, 3), np.float32))

def test_write_video_odd_sample_rate(tmp_path):
    p = write_video(tmp_path / 'odd.mp4', [code_frame(i) for i in range(25)], 25, audio=chirp(1.0, 12345)[0], sr=12345)
    info = probe(p)
    assert info.audio_sample_rate == 48000                                # AAC has no 12 345 Hz: resampled
    assert abs(_stream_durations(p)['audio'] - 1.0) <= 1 / 25
    lag, corr = lag_and_corr(load_audio(p), chirp(1.0, SR)[0])
    assert abs(lag) <= 2 and corr > 0.98

def test_write_video_29_97(tmp_path):
    p = write_video(tmp_path / 'ntsc.mp4', [code_frame(i) for i in range(30)], 30000 / 1001)
    assert probe(p).fps == pytest.approx(30000 / 1001, abs=1e-6)

# ---------------------------------------------------------------- images

def test_image_modes(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / 'rgb.png')
    np.testing.assert_array_equal(load_image(tmp_path / 'rgb.png'), rgb)
    Image.fromarray(rgb[..., 0]).save(tmp_path / 'gray.png')
    g = load_image(tmp_path / 'gray.png'); assert g.shape == (20, 30, 3) and (g[..., 1] == rgb[..., 0]).all()
    rgba = np.dstack([rgb, np.zeros((20, 30), np.uint8)]); rgba[:, :15, 3] = 255
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'rgba.png')
    a = load_image(tmp_path / 'rgba.png')
    assert (a[:, 15:] == 255).all() and (a[:, :15] == rgb[:, :15]).all()   # transparent → white
    Image.fromarray(rgb).convert('P').save(tmp_path / 'pal.png')
    assert load_image(tmp_path / 'pal.png').shape == (20, 30, 3)
    Image.fromarray(rgb).convert('CMYK').save(tmp_path / 'print.jpg', quality=95)
    assert np.abs(load_image(tmp_path / 'print.jpg').astype(int) - rgb).mean() < 20
    deep = (np.arange(20 * 30, dtype=np.uint16).reshape(20, 30) * 100)
    Image.fromarray(deep).save(tmp_path / 'deep.png')                    # 16-bit grayscale
    d = load_image(tmp_path / 'deep.png')
    assert d.dtype == np.uint8 and abs(int(d[-1, -1, 0]) - round(deep[-1, -1] / 257)) <= 1

def test_image_exif_orientation(tmp_path):
    im = np.zeros((20, 40, 3), np.uint8); im[:, :10] = 255                 # stored landscape, white left strip
    exif = Image.Exif(); exif[0x0112] = 6                                 # "rotate 90° clockwise to view"
    Image.fromarray(im).save(tmp_path / 'phone.jpg', exif=exif, quality=95)
    a = load_image(tmp_path / 'phone.jpg')
    assert a.shape == (40, 20, 3) and a[:10].mean() > 200 and a[-10:].mean() < 50   # strip now on top

def test_huge_image_downscaled_with_bounded_memory(tmp_path):
    p = tmp_path / 'huge.jpg'
    Image.new('RGB', (10000, 10000), (120, 30, 200)).save(p, quality=80)
    code = ('import re, sys; from a2v.media import load_image; a = load_image(sys.argv[1]); '   # VmHWM: peak RSS of this
            'print(a.shape, int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read())[1]) // 1024)')  # process image
    out = subprocess.run([sys.executable, '-c', code, str(p)], capture_output=True, text=True, check=True).stdout.split(')')
    shape, rss_mb = out[0] + ')', int(out[1])
    assert shape == '(4096, 4096, 3)'
    assert rss_mb < 450, rss_mb                          # decoding in full costs ~670 MB here (300 MB of RGB + copies)
