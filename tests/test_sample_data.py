"The self-made talking-clip data set: valid files, determinism, faces where the truth says, mouth follows loudness."
import json, shutil, subprocess
from pathlib import Path
import numpy as np
import pytest
from a2v.core import BadInputError
from a2v.sample_data import make_sample_data, loudness_envelope, viseme_of

SECONDS = (3.0, 3.6)

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Two good clips (seed 1) and the four bad ones."
    out = tmp_path_factory.mktemp('sample')
    rows = make_sample_data(out, clips=2, seed=1, seconds=SECONDS, progress=False)
    return out, rows

def _truth(out, cid): return json.loads((out/'truth'/f'{cid}.json').read_text())

def _ffprobe(path) -> dict:
    r = subprocess.run(['ffprobe', '-v', 'error', '-show_entries', 'stream=codec_type,codec_name,duration,nb_frames',
                        '-of', 'json', str(path)], capture_output=True, text=True, check=True)
    return {s['codec_type']: s for s in json.loads(r.stdout)['streams']}

def test_index_and_truth_layout(data):
    out, rows = data
    idx = json.loads((out/'index.json').read_text())
    assert [r['id'] for r in idx['clips']] == [r['id'] for r in rows]
    assert [r['expected_status'] for r in rows] == ['kept', 'kept', 'multiple_faces', 'no_face', 'face_too_small', 'face_left_frame']
    for r in rows:
        t = _truth(out, r['id'])
        n = t['n_frames']
        assert SECONDS[0] - 1 / t['fps'] <= t['duration_s'] <= SECONDS[1] + 1 / t['fps']
        for k in ('mouth_opening', 'mouth_width', 'blink', 'face_box', 'face_boxes', 'face_visible'): assert len(t[k]) == n, k
        op = np.array(t['mouth_opening']); assert 0 <= op.min() and op.max() <= 1
        assert all(s < e for _, s, e in t['phonemes']) and t['phonemes'][-1][2] <= t['duration_s'] + 1e-6
        assert t['heldout'] is False and t['n_samples'] == round(n * 16000 / t['fps'])
    held = json.loads((out/'heldout'/'truth.json').read_text())
    assert held['heldout'] and held['mirrored'] and (out/'heldout'/'photo.png').exists()
    train_sentences = {_truth(out, r['id'])['sentence'] for r in rows}
    assert held['sentence'] not in train_sentences

def test_files_are_valid_mp4_with_matching_durations(data):
    "ffprobe: H.264 video + AAC audio, the video has n_frames frames, both streams last n/fps to within one frame."
    out, rows = data
    for r in rows:
        t = _truth(out, r['id']); s = _ffprobe(out/r['video'])
        assert s['video']['codec_name'] == 'h264' and s['audio']['codec_name'] == 'aac'
        assert int(s['video']['nb_frames']) == t['n_frames']
        for kind in ('video', 'audio'):
            assert abs(float(s[kind]['duration']) - t['duration_s']) <= 1 / t['fps'] + 1e-3, (r['id'], kind, s[kind]['duration'])

def test_heldout_speech(data):
    from a2v.media import load_audio
    out, _ = data
    held = json.loads((out/'heldout'/'truth.json').read_text())
    a = load_audio(out/'heldout'/'speech.wav')
    assert len(a) == held['n_samples'] and np.abs(a).max() > 0.1

def _iou(a, b):
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0])); iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

@pytest.mark.slow
def test_mtcnn_finds_the_faces_where_truth_says(data):
    "MTCNN on sampled decoded frames: one face with IoU >= 0.7 in good clips; the bad clips are bad the way truth says."
    import torch
    from facenet_pytorch import MTCNN
    from a2v.media import read_video
    out, rows = data
    mtcnn = MTCNN(keep_all=True, device='cpu', min_face_size=40)
    def faces(img, min_size=0):
        with torch.inference_mode(): boxes, probs = mtcnn.detect(img)
        if boxes is None: return []
        return [b for b, p in zip(np.asarray(boxes, np.float32), probs) if p > 0.9 and min(b[2] - b[0], b[3] - b[1]) >= min_size]
    for r in rows:
        t = _truth(out, r['id'])
        frames = read_video(out/r['video'], fps=t['fps']).frames          # (F, H, W, 3)
        assert len(frames) == t['n_frames']
        pick = [0, t['n_frames'] // 2] if t['kind'] != 'face_leaves_frame' else []
        for f in pick:
            found = faces(frames[f])
            if t['kind'] == 'good':
                assert len(found) == 1, (r['id'], f, found)
                assert _iou(found[0], t['face_box'][f]) >= 0.7, (r['id'], f, found[0], t['face_box'][f])
            elif t['kind'] == 'multiple_faces':
                assert len(found) == 2 and all(max(_iou(b, tb) for b in found) >= 0.6 for tb in t['face_boxes'][f])
            elif t['kind'] == 'no_face':
                assert found == [], (r['id'], f, found)
            elif t['kind'] == 'face_too_small':
                assert faces(frames[f], min_size=48) == []
        if t['kind'] == 'face_leaves_frame':
            assert len(faces(frames[0])) == 1 and faces(frames[-1]) == []

def test_mouth_opening_follows_loudness(data):
    "Pearson r between the truth's mouth opening (resampled to 25 fps) and the decoded audio's 25 fps RMS envelope."
    from a2v.media import load_audio
    out, rows = data
    for r in rows:
        t = _truth(out, r['id'])
        a = load_audio(out/r['video'])                                    # decoded AAC, 16 kHz
        n25 = int(t['duration_s'] * 25)
        k = np.minimum(((np.arange(n25) + 0.5) / 25 * t['fps']).astype(int), t['n_frames'] - 1)
        op = np.array(t['mouth_opening'])[k]                             # (n25,)
        env = loudness_envelope(a, 16000, 25, n25, db=False)
        rr = np.corrcoef(op, env)[0, 1]
        assert rr > 0.6, (r['id'], rr)

def test_lips_close_on_bilabials(data):
    "The phonemes drive the shape: the mouth is nearly shut in frames inside m/b/p, and open in open vowels."
    out, rows = data
    closed, opened = [], []
    for r in rows:
        t = _truth(out, r['id']); fps = t['fps']; op = np.array(t['mouth_opening'])
        for ph, s, e in t['phonemes']:
            k = [f for f in range(int(s * fps), int(e * fps) + 1) if s <= (f + 0.5) / fps <= e and f < len(op)]
            if viseme_of(ph) == ['bilabial']: closed += list(op[k])
            if viseme_of(ph) == ['open']: opened += list(op[k])
    assert closed and opened
    assert np.mean(closed) < 0.2 and np.mean(opened) > 2 * np.mean(closed) + 0.2, (np.mean(closed), np.mean(opened))

@pytest.mark.slow
def test_deterministic(data, tmp_path):
    "A second build with the same seed gives identical truth json and identical decoded frames and audio."
    from a2v.media import read_video, load_audio
    out, _ = data
    rows = make_sample_data(tmp_path, clips=2, seed=1, seconds=SECONDS, bad=False, progress=False, workers=1)
    for r in rows:
        assert (tmp_path/r['truth']).read_text() == (out/r['truth']).read_text()
        fa, fb = read_video(out/r['video'], fps=r['fps']).frames, read_video(tmp_path/r['video'], fps=r['fps']).frames
        assert fa.shape == fb.shape and np.array_equal(fa, fb)
        assert np.array_equal(load_audio(out/r['video']), load_audio(tmp_path/r['video']))
    other = make_sample_data(tmp_path/'other', clips=1, seed=2, seconds=SECONDS, bad=False, progress=False, workers=1)
    assert _truth(tmp_path/'other', other[0]['id'])['mouth_opening'] != _truth(out, 'clip000')['mouth_opening']

def test_resume_skips_finished_clips(data):
    "Re-running on a finished folder rebuilds nothing (the files keep their modification times)."
    out, _ = data
    before = {p.name: p.stat().st_mtime_ns for p in (out/'videos').iterdir()}
    make_sample_data(out, clips=2, seed=1, seconds=SECONDS, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (out/'videos').iterdir()} == before

@pytest.mark.slow
def test_head_motion_scales_the_face_path(data, tmp_path):
    "head_motion=0 keeps the face box still; the same seed with head_motion=1 moves it (same clip otherwise)."
    out, _ = data
    still = make_sample_data(tmp_path, clips=1, seed=1, seconds=SECONDS, bad=False, progress=False, workers=1, head_motion=0.0)
    a, b = _truth(tmp_path, still[0]['id']), _truth(out, 'clip000')
    spread = lambda t: np.ptp(np.array(t['face_box'], float), axis=0).max()     # px the box edges travel
    assert spread(a) < 0.5 and spread(b) > 3, (spread(a), spread(b))
    assert a['mouth_opening'] == b['mouth_opening'] and a['sentence'] == b['sentence']

def test_bad_arguments(tmp_path):
    with pytest.raises(BadInputError, match='not a folder'): make_sample_data(tmp_path, clips=1, faces_dir=tmp_path/'nope')
    with pytest.raises(BadInputError, match='clips must be'): make_sample_data(tmp_path, clips=-1)
    with pytest.raises(BadInputError, match='seconds'): make_sample_data(tmp_path, clips=1, seconds=(4, 3))
    with pytest.raises(BadInputError, match='head_motion'): make_sample_data(tmp_path, clips=1, head_motion=-1)

def test_user_faces_dir(tmp_path):
    "A photo passed in faces_dir is used; a photo without a face is skipped and reported."
    from PIL import Image
    import skimage.data
    fd = tmp_path/'faces'; fd.mkdir()
    Image.fromarray(skimage.data.astronaut()[::-1, ::-1].copy()[::-1]).save(fd/'me.png')   # mirrored astronaut
    Image.fromarray(skimage.data.brick()).save(fd/'wall.png')
    from a2v.sample_data import load_faces
    faces, skipped = load_faces(tmp_path/'out', fd)
    assert 'user_me' in faces and 'user_wall' not in faces and any('wall.png' in s for s in skipped)

def test_shipped_builtin_faces_are_what_mtcnn_says(tmp_path, monkeypatch):
    "a2v/data/builtin_faces.json equals MTCNN's answer on the built-in photos, and load_faces uses it without running MTCNN."
    import hashlib
    import a2v.sample_data as sd
    shipped = json.loads(sd.BUILTIN_FACES.read_text())
    for name, im in sd.builtin_faces().items():
        rec = shipped[name]
        assert rec['hash'] == hashlib.sha1(im.tobytes() + str(im.shape).encode()).hexdigest()[:16], name
        fresh = sd.detect_face_landmarks(im)
        assert len(fresh) == len(rec['faces']), name
        for a, b in zip(fresh, rec['faces']):
            assert np.allclose(a['box'], b['box'], atol=0.05) and abs(a['prob'] - b['prob']) < 1e-3, name
            for k in a['landmarks']: assert np.allclose(a['landmarks'][k], b['landmarks'][k], atol=0.05), (name, k)
    def no_mtcnn(img): raise AssertionError('MTCNN ran for a built-in photo')
    monkeypatch.setattr(sd, 'detect_face_landmarks', no_mtcnn)
    faces, skipped = sd.load_faces(tmp_path)
    assert sorted(faces) == sorted(shipped) and skipped == []
    assert json.loads((tmp_path/'faces'/'astronaut.json').read_text()) == shipped['astronaut']      # (the run's cache, as before)
    cp = tmp_path/'faces'/'astronaut.json'; cp.write_text(json.dumps(dict(shipped['astronaut'], hash='other')))
    monkeypatch.setattr(sd, 'BUILTIN_FACES', tmp_path/'none.json')          # no shipped answer and a stale cache: MTCNN runs
    with pytest.raises(AssertionError, match='MTCNN ran'): sd.load_faces(tmp_path)
