"""Bad inputs, one row each: the `a2v` command ends with a one-line error that names the file or key, and leaves nothing behind.

`CASES` is the table of cases; README.md's "Bad input" section states the contract in three lines and points here.
Placeholders: {in} the folder of prepared bad inputs, {run} a copy of a small
finished run (after the case's `setup` damaged it), {tmp} an empty folder of the case, {file} a regular file.
`place` is what must not gain files: the run for run cases, else the output path. `a2v crop` records every input
in manifest.jsonl (the documented `a2v crop` contract), so for crop the place checked is the clips/ folder."""
import os, shutil, subprocess, sys, time, wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import numpy as np, pytest

ROOT = Path(__file__).resolve().parents[1]

# (subcommand arguments, what is wrong, text the message must contain, place that must stay clean, run setup)
CASES = [
    ('sample-data --out {file}/data', 'output folder under a regular file', '{file}/data', '{file}', None),
    ('sample-data --out {tmp}/d --clips -1', 'negative clip count', 'sample_data.clips', '{tmp}', None),
    ('sample-data --out {tmp}/d --set sample_data.seconds=[5,3]', 'clip lengths out of order', 'sample_data.seconds', '{tmp}', None),
    ('sample-data --out {tmp}/d --set sample_data.head_motion=fast', 'a word for a number', 'sample_data.head_motion', '{tmp}', None),
    ('sample-data --out {tmp}/d --set nosuch.key=1', 'unknown config key', "'nosuch.key'", '{tmp}', None),
    ('sample-data --out {tmp}/d --set seed', '--set without =', "'seed'", '{tmp}', None),
    ('crop {in}/noaudio.mp4 --out {tmp}/c', 'a video without audio', 'noaudio.mp4', '{tmp}/c/clips', None),
    ('crop {in}/empty.mp4 --out {tmp}/c', 'a 0-byte mp4', 'empty.mp4', '{tmp}/c/clips', None),
    ('crop {in}/text.mp4 --out {tmp}/c', 'a text file named .mp4', 'text.mp4', '{tmp}/c/clips', None),
    ('crop {in}/missing.mp4 --out {tmp}/c', 'a video that does not exist', 'missing.mp4', '{tmp}/c/clips', None),
    ('crop --out {tmp}/c', 'no videos at all', 'no input videos', '{tmp}', None),
    ('crop {in}/noaudio.mp4 --out {file}/c', 'output folder under a regular file', '{file}/c', '{file}', None),
    ('crop --list {in}/nolist.txt --out {tmp}/c', 'a --list file that does not exist', 'nolist.txt', '{tmp}', None),
    ('crop --avspeech-csv {in}/rows.csv --out {tmp}/c', '--avspeech-csv without --videos', '--videos', '{tmp}', None),
    ('crop {in}/noaudio.mp4 --out {tmp}/c --set crop.min_prob=2', 'a probability above 1', 'crop.min_prob', '{tmp}', None),
    ('fit-generator --run {tmp}/none', 'a run directory that does not exist', '{tmp}/none', '{tmp}', None),
    ('fit-generator --run {run} --preset paper', 'another preset than the run recorded', 'tiny preset', '{run}', None),
    ('fit-generator --run {run} --set generator.fit_batch=0', 'a batch of 0', 'generator.fit_batch', '{run}', None),
    ('invert --run {tmp}/none', 'a run directory that does not exist', '{tmp}/none', '{tmp}', None),
    ('invert --run {run} --set invert.warm_start=prev', 'a value not in the list', 'invert.warm_start', '{run}', None),
    ('invert --run {run} --set invert.batch_clips=many', "neither a number nor 'auto'", 'invert.batch_clips', '{run}', None),
    ('invert --run {run} --set invert.lr_first=nan', 'a learning rate that is not a number', 'invert.lr_first', '{run}', None),
    ('invert --run {run} --set invert.steps_first=1.5', 'a fraction of a step', 'invert.steps_first', '{run}', None),
    ('invert --run {run} --set device=cuda:7', 'a device this machine lacks', 'device', '{run}', None),
    ('invert --run {run}', 'a torn config.json', 'config.json: not a readable config (JSONDecodeError', '{run}', 'config_torn'),
    ('invert --run {run}', 'a config.json that is a list', 'config.json: not a readable config (a JSON list', '{run}', 'config_list'),
    ('invert --run {run}', 'a run without its generator', 'generator.safetensors', '{run}', 'no_generator'),
    ('invert --run {run}', 'a run whose crop kept nothing', 'manifest.jsonl', '{run}', 'no_clips'),
    ('train-vae --run {run}', 'a run without latents', 'latents', '{run}', 'no_latents'),
    ('train-vae --run {run}', 'a damaged latents file', 'c0.safetensors', '{run}', 'latents_torn'),
    ('train-vae --run {run}', 'a split.json that is a list', 'split.json', '{run}', 'split_list'),
    ('train-vae --run {run} --set vae.layers=[]', 'no layers', 'vae.layers', '{run}', None),
    ('embed-audio --run {run} --set audio.model={in}/w2v_empty', 'an empty weights folder', 'w2v_empty', '{run}', None),
    ('embed-audio --run {run} --set audio.model={in}/w2v_garbage', 'a garbage config.json', 'w2v_garbage/config.json', '{run}', None),
    ('embed-audio --run {run} --set audio.model={in}/w2v_hostile', 'a pickle that would run code', 'w2v_hostile/pytorch_model.bin', '{run}', None),
    ('embed-audio --run {run} --set audio.overlap_s=40', 'overlap longer than a chunk', 'audio.overlap_s', '{run}', None),
    ('train-embed2lat --run {run}', 'a run without the VAE', 'split.json', '{run}', 'no_vae'),
    ('train-embed2lat --run {run}', 'a damaged audio embedding', 'c0.safetensors', '{run}', 'audio_torn'),
    ('train-embed2lat --run {run} --set embed2lat.dropout=1', 'dropout of 1', 'embed2lat.dropout', '{run}', None),
    ('render --run {run} --image {in}/noface.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a photo with no face', 'noface.png', '{tmp}', None),
    ('render --run {run} --image {in}/two_faces.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a photo with two faces', 'two_faces.png', '{tmp}', None),
    ('render --run {run} --image {in}/text.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a text file named .png', 'text.png', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/photo.wav --out {tmp}/o.mp4', 'a png named .wav', 'photo.wav', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/missing.wav --out {tmp}/o.mp4', 'speech that does not exist', 'missing.wav', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4 --ref-pose {in}/text.mp4', 'a text file as the reference video', 'text.mp4', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4 --blink-rate 500', 'blinks above 120 a minute', 'render.blink_rate', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4 --head-motion -1', 'negative head motion', 'render.head_motion', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {file}/o.mp4', 'output under a regular file', '{file}/o.mp4', '{file}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}', 'output that is a folder', 'is a directory', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a torn vae/stats.json', 'stats.json', '{tmp}', 'stats_torn'),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a VAE model without its config', 'vae/model.safetensors', '{tmp}', 'vae_nometa'),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a garbage Embed2Lat model', 'embed2lat/model.safetensors', '{tmp}', 'e2l_garbage'),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4 --face-index 3', 'a face index out of range', 'face-index', '{tmp}', None),
    ('figures --run {tmp}/none', 'a run directory that does not exist', '{tmp}/none', '{tmp}', None),
    ('figures --run {run}', 'a run whose latents are gone', 'latents', '{run}', 'latents_gone'),
    ('pipeline --run {tmp}/p --set invert.init=foo', 'a value not in the list', 'invert.init', '{tmp}', None),
    ('pipeline --run {run} --preset paper', 'another preset than the run recorded', 'tiny preset', '{run}', None),
    ('weights path nosuch', 'an unknown weights name', 'nosuch', '{tmp}', None),
    ('weights fetch nosuch', 'an unknown weights name', 'nosuch', '{tmp}', None),
    # ---- issue 35: nothing silently wrong
    # `invert --clips` with an id the run does not have: one line naming the id (was: exit 0 with the failure only in
    # the stdout JSON, and latents/nosuchclip.error.json, latents/invert_log.jsonl and an empty clips/nosuchclip/ left behind)
    ('invert --run {run} --clips nosuchclip', 'a clip id the run does not have', "clip 'nosuchclip'", '{run}', None),
    # `invert --clips` with a clip the crop discarded ('no_clips': c0 is discarded, reason no_face): refused alike,
    # with the clip's status and reason
    ('invert --run {run} --clips c0', 'a clip id the crop discarded', "clip 'c0': not a kept clip", '{run}', 'no_clips'),
    ('render --run {run} --image {in}/face.png --audio {in}/onehz.wav --out {tmp}/o.mp4', 'a WAV whose header says 1 Hz (13.6 h in 98 KB)',
     'onehz.wav: sample rate 1 Hz is outside 4–192 kHz', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/long.wav --out {tmp}/o.mp4', 'speech of 2.5 h, over the 2 h maximum',
     'long.wav: 2.5 h of audio to load, over the 2.0 h maximum (MAX_AUDIO_SECONDS)', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio {in}/nan.wav --out {tmp}/o.mp4', 'NaN samples in float speech',
     'nan.wav: 100 NaN samples (the first at 0.50 s)', '{tmp}', None),
    ('render --run {run} --image {in}/face.png --audio /dev/zero --out {tmp}/o.mp4', 'a character device as the speech',
     '/dev/zero: not a regular file but a character device', '{tmp}', None),
    ('render --run {run} --image /dev/zero --audio {in}/speech.wav --out {tmp}/o.mp4', 'a character device as the photo',
     '/dev/zero: not a regular file but a character device', '{tmp}', None),
    ('crop {in}/fifo.mp4 --out {tmp}/c', 'a FIFO (named pipe) as a video', 'fifo.mp4: not a regular file but a FIFO', '{tmp}/c/clips', None),
    # never overwrite an input: --out is the photo itself (a copy inside the run); refused before any work
    ('render --run {run} --image {run}/face.png --audio {in}/speech.wav --out {run}/face.png', '--out equal to --image', 'face.png: is also an input', '{run}', 'photo_in_run'),
    # the writer makes H.264 + AAC: an o.webm would be an mp4 under a false name
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.webm', 'an --out suffix the writer does not make', 'o.webm: render writes H.264 + AAC video', '{tmp}', None),
    # a render-time frame rate that is not the run's (76 frames at 30 fps cut the speech to 2.5 s)
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4 --set crop.fps=30', "a frame rate other than the run's", "crop.fps: 30 is not this run's", '{tmp}', None),
    # photo steps of 0 render the average face: the bound excludes 0
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4 --set render.photo_steps_factor=0', 'photo steps of 0', 'render.photo_steps_factor', '{tmp}', None),
    # σ_code NaN or 0 in vae/stats.json decodes black or still frames: refused when the VAE loads
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'σ_code NaN in vae/stats.json', 'stats.json: sigma_code nan', '{tmp}', 'stats_nan'),
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'σ_code 0 in vae/stats.json', 'stats.json: sigma_code 0', '{tmp}', 'stats_zero'),
    # a config.json of {} named no preset (it silently became the paper preset and reached for NVIDIA's pickle)
    ('invert --run {run}', 'a config.json of {}', "config.json: not a readable config (no key 'preset')", '{run}', 'config_empty'),
    # a split.json naming a clip the run does not have (said "run `a2v embed-audio`")
    ('train-embed2lat --run {run}', 'a split.json naming an unknown clip', "split.json: names clip 'nosuch'", '{run}', 'split_unknown'),
    # speech that decodes to silence (a muted track; stereo whose channels cancel): a still face over a silent track
    ('render --run {run} --image {in}/face.png --audio {run}/silent.wav --out {tmp}/o.mp4', 'silent speech', 'silent.wav: the speech is silent', '{tmp}', 'silent_speech'),
    # the render judges itself: the prepared run's random 32 px generator makes no faces, so the face mesh's lowest
    # score is far below render.min_face_score (0.5); nothing is written (needs the face mesh in the cache, as CI has)
    ('render --run {run} --image {in}/face.png --audio {in}/speech.wav --out {tmp}/o.mp4', 'a render that is not a face', 'o.mp4: not a face in every frame', '{tmp}', None),
    # one writer at a time: another a2v command holds the run (RUN/.lock, `run_lock` of 00_core; here a stand-in holding
    # it as `a2v train-vae` does); a second writer is refused at once, naming the holder's pid and command (was: both
    # ran, each taking the other's half-made files for its own)
    ('invert --run {run}', 'a run another a2v command is writing into', '(a2v train-vae); wait for it to end or stop it, then run a2v invert again', '{run}', 'run_in_use'),
    ('pipeline --run {run} --no-notebooks', 'a pipeline on a run another a2v command is writing into', 'the run is in use by pid', '{run}', 'run_in_use'),
    # a full disk while a stage writes (the inversion's log, appended after clip c0's latents, is /dev/full, which
    # answers every write with ENOSPC): one line naming the file and the space left (was: "unexpected OSError"
    # naming nothing; with safetensors, "unexpected SafetensorError ... No space left on device")
    ('invert --run {run}', 'a full disk while the inversion writes its log', 'latents/invert_log.jsonl: no space left on the disk holding it', '{run}/vae', 'log_disk_full'),
    # §4.2's encoder (12_encoder): a ReStyle checkpoint that would run code is refused with nothing run; an encoder of
    # another generator, codes from inversions the run does not have, and a malformed --steps each say so in one line
    ('invert --run {run} --set invert.init=encoder --set encoder.source={in}/restyle_hostile.pt', 'an encoder checkpoint that would run code', 'restyle_hostile.pt: refused', '{run}', 'latents_gone'),
    ('invert --run {run} --set invert.warm_start=encoder', "the tiny encoder for another generator", 'the encoder writes (16, 128) codes; the generator takes', '{run}', 'latents_gone'),
    ('train-encoder --run {run} --set encoder.codes_from=inversions', 'codes from inversions the run lacks', "encoder.codes_from='inversions' needs the run's inverted codes", '{run}', 'no_latents'),
    ('compare-starts --run {run} --steps 1,x', 'steps that are not numbers', "--steps: '1,x'", '{run}', None),
    # a clip folder that vanished while manifest.jsonl still lists the clip (it was made again, empty, and the run exited 0)
    ('invert --run {run}', 'a kept clip whose folder vanished', "clips/c0: missing, though manifest.jsonl lists clip 'c0' as kept", '{run}', 'clip_gone'),
]

# ---- the inputs
SMALL = {'invert.steps_first': 2, 'invert.steps_next': 1, 'vae.epochs': 2, 'embed2lat.epochs': 2, 'crop.resolution': 32,
         'device': 'cpu', 'render.batch_size': 4, 'vae.layers': [1, 2, 3], 'generator.source': 'generator/generator.safetensors'}
ARCH = dict(z_dim=32, w_dim=32, img_resolution=32, channel_base=512, channel_max=32, num_layers=4, conv_kernel=1,
            use_radial_filters=True, lrelu_upsampling=1)

def _wav(path, x, sr=16000):
    with wave.open(str(path), 'wb') as w:
        w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr); w.writeframes((np.clip(x, -1, 1) * 32767).astype('<i2').tobytes())

def _make_inputs(d:Path):
    from PIL import Image
    from a2v.media import sample_photo, write_video
    d.mkdir(parents=True)
    face = sample_photo('grace_hopper')                                              # (H, W, 3) one face
    Image.fromarray(face).save(d/'face.png')
    Image.fromarray(np.concatenate([face, face[:, ::-1]], 1)).save(d/'two_faces.png')
    Image.fromarray(np.full((300, 300, 3), 128, np.uint8)).save(d/'noface.png')
    shutil.copy(d/'face.png', d/'photo.wav')                                          # a png named .wav
    (d/'text.png').write_text('not an image'); (d/'text.mp4').write_text('not a video'); (d/'empty.mp4').write_bytes(b'')
    write_video(d/'noaudio.mp4', np.repeat(face[None, ::4, ::4], 10, 0), fps=25)     # video stream only
    t = np.arange(16000) / 16000; _wav(d/'speech.wav', 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t)))
    (d/'rows.csv').write_text('abc,0,3,0.5,0.5\n')
    (d/'w2v_empty').mkdir(); (d/'w2v_garbage').mkdir(); (d/'w2v_garbage'/'config.json').write_text('{nope')
    (d/'w2v_hostile').mkdir(); (d/'w2v_hostile'/'config.json').write_text('{"model_type": "wav2vec2"}')
    (d/'w2v_hostile'/'pytorch_model.bin').write_bytes(_hostile_pickle(d/'HACKED'))
    _hostile_torch(d/'restyle_hostile.pt', d/'HACKED')
    _make_media_inputs(d)

def _make_media_inputs(d:Path):
    "The inputs of MEDIA_ROWS, in the folder `d` of prepared bad inputs ({in})."
    import os, struct, wave
    from pathlib import Path
    import numpy as np
    d = Path(d)
    def wav_claiming(path, sr, n):
        "A 16-bit mono WAV whose header says `n` samples at `sr` Hz; sparse, so a long one uses no disk."
        with wave.open(str(path), 'wb') as w: w.setnchannels(1); w.setsampwidth(2); w.setframerate(sr); w.writeframes(b'')
        b = bytearray(path.read_bytes()); i = b.find(b'data')
        b[i + 4:i + 8] = struct.pack('<I', 2 * n); b[4:8] = struct.pack('<I', i + 2 * n)
        with open(path, 'wb') as f: f.write(b); f.truncate(i + 8 + 2 * n)
    wav_claiming(d/'onehz.wav', 1, 49_000)                               # 98 KB, 13.6 h by its header
    wav_claiming(d/'long.wav', 16000, int(2.5 * 3600 * 16000))           # 288 MB of zeros, sparse
    x = (0.3 * np.sin(2 * np.pi * 220 * np.arange(16000) / 16000)).astype('<f4'); x[8000:8100] = np.nan
    fmt = struct.pack('<HHIIHH', 3, 1, 16000, 16000 * 4, 4, 32)           # WAVE_FORMAT_IEEE_FLOAT, mono, 32-bit
    data = x.tobytes()
    (d/'nan.wav').write_bytes(b'RIFF' + struct.pack('<I', 4 + 8 + len(fmt) + 8 + len(data)) + b'WAVE' + b'fmt ' +
                              struct.pack('<I', len(fmt)) + fmt + b'data' + struct.pack('<I', len(data)) + data)
    os.mkfifo(d/'fifo.mp4')

def _hostile_pickle(marker:Path) -> bytes:
    import pickle
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    return pickle.dumps({'w': Evil()})

def _hostile_torch(path:Path, marker:Path):
    "A torch checkpoint in ReStyle's layout whose `opts` would run `touch marker` when unpickled."
    import torch
    class Evil:
        def __reduce__(self): return (os.system, (f'touch {marker}',))
    torch.save({'state_dict': {'encoder.input_layer.0.weight': torch.zeros(1)}, 'opts': Evil(), 'latent_avg': torch.zeros(512)}, path)

def _make_run(run:Path):
    "A small finished run: 3 clips of 25 frames, a random 32 px generator, latents, VAE, tiny audio, Embed2Lat."
    import torch
    from a2v.core import RunDir, get_config, append_jsonl, atomic_write_json
    from a2v.media import write_video, save_wav
    from a2v.stylegan3 import Generator, save_generator
    from a2v.pipeline import run_stage
    torch.manual_seed(0); torch.set_num_threads(1)
    cfg = get_config('tiny', **SMALL); rd = RunDir(run); rd.save_config(cfg)
    G = Generator(**ARCH).eval().requires_grad_(False)
    for i in range(3):
        with torch.no_grad(): x = G.synthesis(G.mapping(torch.randn(25, G.z_dim)), noise_mode='const').clamp(-1, 1)
        u8 = ((x + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()                     # (25, 32, 32, 3)
        d = rd.clip_dir(f'c{i}'); write_video(d/'frames.mp4', u8, fps=25, crf=0)
        save_wav(d/'audio.wav', (np.random.default_rng(i).standard_normal(16000) * 0.1).astype(np.float32), 16000)
        atomic_write_json(d/'meta.json', dict(frames=25, fps=25.0, sample_rate=16000))
        append_jsonl(rd.manifest, dict(clip=f'c{i}', source=f'v{i}.mp4', status='kept', reason=None, frames=25, fps=25.0))
    save_generator(G, run/cfg.generator.source)
    for stage in ('invert', 'train-vae', 'embed-audio', 'train-embed2lat'): run_stage(stage, run, cfg, progress=False)

def _damage_render(run, how:str):
    import json, shutil
    import numpy as np
    from a2v.core import read_jsonl
    if how == 'photo_in_run':
        from PIL import Image
        from a2v.media import sample_photo
        Image.fromarray(sample_photo('grace_hopper')).save(run/'face.png')
    elif how in ('stats_nan', 'stats_zero'):
        s = json.loads((run/'vae'/'stats.json').read_text()); s['sigma_code'] = float('nan') if how == 'stats_nan' else 0
        (run/'vae'/'stats.json').write_text(json.dumps(s))                  # json writes NaN as NaN
    elif how == 'config_empty': (run/'config.json').write_text('{}')
    elif how == 'split_unknown':
        s = json.loads((run/'vae'/'split.json').read_text()); s['train'].append('nosuch')
        (run/'vae'/'split.json').write_text(json.dumps(s)); (run/'embed2lat'/'metrics.json').unlink()
    elif how == 'silent_speech': _wav(run/'silent.wav', np.zeros(16000))   # _wav: test_bad_inputs' own helper
    else: raise ValueError(how)

def _hold_run(run):
    "Another a2v writer holding `run` (as `a2v train-vae` would), until the thread that set it up ends, at most 300 s."
    import ctypes, signal, subprocess, sys
    code = (f"import time\nfrom a2v.core import run_lock\n"
            f"with run_lock({str(run)!r}, 'a2v train-vae'): print('held', flush=True); time.sleep(300)")
    die = lambda: ctypes.CDLL(None).prctl(1, int(signal.SIGKILL), 0, 0, 0)   # PR_SET_PDEATHSIG: it dies with the case's thread
    p = subprocess.Popen([sys.executable, '-c', code], stdout=subprocess.PIPE, text=True, preexec_fn=die,
                         env={**os.environ, 'PYTHONPATH': str(ROOT)})
    assert p.stdout.readline().strip() == 'held', 'the stand-in writer did not take the run'

def _damage(run:Path, how:str):
    "Damage a copy of the prepared run the way a case needs."
    import torch
    from a2v.core import load_tensors, save_tensors
    torn = lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    if how == 'config_torn': torn(run/'config.json')
    elif how == 'config_list': (run/'config.json').write_text('["tiny"]')
    elif how == 'no_generator': shutil.rmtree(run/'generator'); shutil.rmtree(run/'latents')
    elif how == 'no_clips': (run/'manifest.jsonl').write_text('{"clip": "c0", "status": "discarded", "reason": "no_face"}\n')
    elif how == 'no_latents': shutil.rmtree(run/'latents'); shutil.rmtree(run/'vae')
    elif how == 'latents_gone': shutil.rmtree(run/'latents')
    elif how == 'latents_torn': torn(run/'latents'/'c0.safetensors'); shutil.rmtree(run/'vae')
    elif how == 'split_list': (run/'vae'/'split.json').write_text('[1, 2]'); (run/'vae'/'metrics.json').unlink()
    elif how == 'no_vae': shutil.rmtree(run/'vae'); (run/'embed2lat'/'metrics.json').unlink()
    elif how == 'audio_torn': (run/'audio'/'c0.safetensors').write_bytes(b'\0' * 64); (run/'embed2lat'/'metrics.json').unlink()
    elif how == 'stats_torn': torn(run/'vae'/'stats.json')
    elif how == 'vae_nometa': save_tensors(run/'vae'/'model.safetensors', load_tensors(run/'vae'/'model.safetensors')[0])
    elif how == 'e2l_garbage': (run/'embed2lat'/'model.safetensors').write_bytes(b'garbage')
    elif how in ('photo_in_run', 'stats_nan', 'stats_zero', 'config_empty', 'split_unknown', 'silent_speech'): _damage_render(run, how)
    elif how == 'run_in_use': _hold_run(run)
    elif how == 'clip_gone': shutil.rmtree(run/'clips'/'c0'); shutil.rmtree(run/'latents')
    elif how == 'log_disk_full':
        (run/'latents'/'c0.safetensors').unlink(); (run/'latents'/'invert_log.jsonl').unlink(missing_ok=True)
        os.symlink('/dev/full', run/'latents'/'invert_log.jsonl')     # every write: ENOSPC, "No space left on device"
    else: raise ValueError(how)

def _files(p:Path) -> set:
    return {str(q.relative_to(p)) for q in p.rglob('*') if q.is_file()} if p.is_dir() else ({'.'} if p.exists() else set())

def _run_case(k:int, base:Path, inputs:Path, prepared:Path) -> dict:
    args, _, names, place, setup = CASES[k]
    tmp = base/f'case{k:02d}'; tmp.mkdir()
    f = tmp/'a_file'; f.write_text('a regular file')
    run = tmp/'run'; shutil.copytree(prepared, run)
    if setup: _damage(run, setup)
    fill = lambda s: s.format(**{'in': inputs, 'run': run, 'tmp': tmp/'w', 'file': f})
    (tmp/'w').mkdir()
    place_p = Path(fill(place)); before = _files(place_p)
    env = {k: v for k, v in os.environ.items() if k not in ('A2V_FIGURES', 'A2V_DEBUG')}
    env.update(PYTHONPATH=str(ROOT), HF_HUB_OFFLINE='1', TRANSFORMERS_OFFLINE='1', OMP_NUM_THREADS='1')
    t0 = time.time()
    p = subprocess.run([sys.executable, '-m', 'a2v.cli', *fill(args).split()], cwd=tmp/'w', env=env,
                       capture_output=True, text=True, timeout=300)
    return dict(seconds=round(time.time() - t0, 1), rc=p.returncode, out=p.stdout, err=p.stderr, names=fill(names), new=sorted(_files(place_p) - before))

@pytest.fixture(scope='module')
def results(tmp_path_factory):
    base = tmp_path_factory.mktemp('bad')
    _make_inputs(base/'in'); _make_run(base/'prepared')
    with ThreadPoolExecutor(2) as ex:
        res = list(ex.map(lambda k: _run_case(k, base, base/'in', base/'prepared'), range(len(CASES))))
    res.append(dict(hacked=(base/'in'/'HACKED').exists()))
    return res

@pytest.mark.slow
@pytest.mark.parametrize('k', range(len(CASES)), ids=[f"{c[0].split()[0]}-{c[1].replace(' ', '_')[:40]}" for c in CASES])
def test_bad_input(results, k):
    r = results[k]
    err_lines = [l for l in r['err'].split('\n') if l.strip()]   # a progress bar redrawn with \r is one terminal line
    assert r['rc'] != 0, r
    assert 'Traceback' not in r['err'] + r['out'], r['err'][-2000:]
    assert len(err_lines) <= 2, r['err'][-2000:]
    assert r['names'] in r['err'], (r['names'], r['err'])
    assert r['new'] == [], r['new']

@pytest.mark.slow
def test_no_code_ran_from_a_weights_folder(results): assert not results[-1]['hacked']

def test_table_is_large_and_covers_every_subcommand():
    cmds = {c[0].split()[0] for c in CASES}
    assert len(CASES) >= 40
    assert cmds >= {'sample-data', 'crop', 'fit-generator', 'invert', 'train-vae', 'embed-audio', 'train-embed2lat',
                    'render', 'figures', 'pipeline', 'weights'}

def test_readme_states_the_contract_and_points_here():
    readme = (ROOT/'README.md').read_text()
    section = readme.split('## Bad input', 1)[1].split('\n## ', 1)[0]
    assert '`a2v: error: <file or key>: <what is wrong>`' in section and f'`tests/{Path(__file__).name}`' in section
