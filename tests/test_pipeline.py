"End to end at a micro scale: every stage of the tiny preset, through the `a2v` command and the stage notebooks."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, torch
import pytest

ROOT = Path(__file__).resolve().parents[1]
from conftest import A2V, MICRO, _a2v   # and the session's `micro_run` fixture, which test_app.py's page uses too

@pytest.mark.slow
def test_every_stage_leaves_its_outputs(micro_run):
    run, seconds = micro_run
    print(f"micro pipeline: {seconds:.0f} s")
    rows = [json.loads(l) for l in (run/'manifest.jsonl').read_text().splitlines()]
    kept = [r['clip'] for r in rows if r['status'] == 'kept']
    assert len(kept) >= 2 and all(r['reason'] for r in rows if r['status'] != 'kept')
    from a2v.core import load_tensors, get_config
    cfg = get_config('tiny')
    for cid in kept:
        ws = load_tensors(run/'latents'/f'{cid}.safetensors')[0]['ws']
        e = load_tensors(run/'audio'/f'{cid}.safetensors')[0]['e']
        assert ws.shape[1:] == (16, cfg.generator.arch['w_dim']) and np.isfinite(ws.numpy()).all()
        assert abs(len(e) / 50 - len(ws) / 25) < 0.1     # 50 audio vectors and 25 frames per second
    for p in ['vae/model.safetensors', 'embed2lat/model.safetensors', 'figures/18_side_by_side.png',
              'figures/fig2_inversion.png', 'figures/fig3_vae.png', 'figures/fig4_full_flow.png',
              'notebooks/13_invert.ipynb', 'notebooks/18_render.ipynb', 'embed2lat/lipsync.json',
              'renders/demo_side_by_side.mp4']:
        assert (run/p).exists(), p
    assert not (run/'generator').exists()                                  # nothing fitted: the shipped generator
    assert load_tensors(run/'latents'/f'{kept[0]}.safetensors')[1]['generator'] == 'a2v-tiny-generator-v1'

@pytest.mark.slow
def test_stages_wait_for_their_inputs_and_audio_runs_beside_the_generator(micro_run):
    "The markers' start times: no stage began before its inputs ended; embed-audio began while fit-generator ran (--jobs 2)."
    from a2v.pipeline import STAGES, STAGE_INPUTS
    run, _ = micro_run
    mk = {n: json.loads((run/'stages'/f'{n}.json').read_text()) for n, *_ in STAGES}
    end = {n: m['started'] + m['seconds'] for n, m in mk.items()}
    for n, m in mk.items():
        for u in STAGE_INPUTS[n]: assert m['started'] >= end[u] - 0.1, (u, n)
    assert mk['fit-generator']['started'] <= mk['embed-audio']['started'] < end['fit-generator']
    m = json.loads((run/'metrics.json').read_text())
    assert set(m['stage_seconds']) == set(mk) and 0 < m['pipeline_seconds'] < sum(m['stage_seconds'].values())

@pytest.mark.slow
def test_render_mp4_and_metrics(micro_run):
    run, _ = micro_run
    from a2v.media import probe, load_audio
    speech = next((run/'data'/'heldout').glob('speech.wav'))
    T = len(load_audio(speech)) / 16000
    m = json.loads((run/'metrics.json').read_text())
    for mode in ('paper', 'calibrated'):
        info = probe(run/'renders'/f'demo_{mode}.mp4')
        assert info.has_video and info.has_audio and abs(info.fps - 25) < 1e-3
        assert info.width == info.height == 64
        assert abs(info.duration - T) <= 1 / 25 + 0.03, (info.duration, T)
        r = m['renders'][mode]
        assert r['flicker_background'] >= 0 and r['flicker_face'] >= 0
        assert r['lipsync']['r'] is None or -1 <= r['lipsync']['r'] <= 1   # None: a micro model may not move the mouth
    mo = m['motion']                                        # both photos, two unseen sentences, judged twice
    assert len(mo['renders']) == 4 and 'mesh' not in mo        # the face mesh is in the cache after set-up
    for x in mo['renders']:
        for k in ('r_truth', 'r_truth_mesh'): assert x[k] is None or -1 <= x[k] <= 1
        assert 0 <= x['face_score_min'] <= 1 and x['amplitude_ratio'] >= 0
    assert mo['min_face_score'] == min(x['face_score_min'] for x in mo['renders'])
    st = mo['stretch']                                      # blinks and head motion: half a minute per photo
    assert st['seconds'] >= 59 and st['blink_rate'] == pytest.approx(60 * st['blinks'] / st['seconds'])
    assert mo['blink_rate_ratio'] is None or mo['blink_rate_ratio'] == pytest.approx(st['blink_rate'] / mo['training_motion']['blink_rate'])

@pytest.mark.slow
def test_second_run_only_rerenders(micro_run):
    run, _ = micro_run
    upstream = [p for d in ('clips', 'latents', 'vae', 'audio', 'embed2lat') for p in (run/d).rglob('*') if p.is_file()]
    assert upstream
    before = {p: p.stat().st_mtime_ns for p in upstream}
    r = _a2v('pipeline', '--run', run, '--no-notebooks')      # config read back from the run directory
    for stage in ('sample-data', 'crop', 'fit-generator', 'invert', 'train-vae', 'embed-audio', 'train-embed2lat'):
        assert f'{stage}: done, skipped' in r.stdout, stage
    assert {p: p.stat().st_mtime_ns for p in upstream} == before   # nothing upstream written again (a timing here flaked under load)

@pytest.mark.slow
def test_changed_config_reruns_stage_from_scratch(micro_run):
    "A stage whose config changed is re-run on fresh outputs (not resumed from the old ones); the rest is skipped."
    run, _ = micro_run
    before = (run/'embed2lat'/'model.safetensors').stat().st_mtime
    r = _a2v('pipeline', '--run', run, '--no-notebooks', '--set', 'embed2lat.epochs=2')
    assert 'train-vae: done, skipped' in r.stdout and 'train-embed2lat: done, skipped' not in r.stdout
    assert json.loads((run/'stages'/'train-embed2lat.json').read_text())['config']['embed2lat']['epochs'] == 2
    assert (run/'embed2lat'/'model.safetensors').stat().st_mtime > before

@pytest.mark.slow
def test_rerun_stage_reruns_everything_downstream(micro_run):
    "A VAE trained again means a new Embed2Lat too (it learned the old VAE's latents); upstream stages are kept."
    run, _ = micro_run
    before = (run/'embed2lat'/'model.safetensors').stat().st_mtime
    r = _a2v('pipeline', '--run', run, '--no-notebooks', '--set', 'embed2lat.epochs=2', '--set', 'vae.epochs=3')
    for stage in ('crop', 'fit-generator', 'invert', 'embed-audio'): assert f'{stage}: done, skipped' in r.stdout, stage
    for stage in ('train-vae', 'train-embed2lat'): assert f'{stage}: done, skipped' not in r.stdout, stage
    assert (run/'embed2lat'/'model.safetensors').stat().st_mtime > before
    key = json.loads((run/'stages'/'train-embed2lat.json').read_text())['config']
    assert key['vae']['epochs'] == 3 and 'generator' in key                      # its marker holds upstream config

@pytest.mark.slow
def test_render_command_and_its_errors(micro_run, tmp_path):
    run, _ = micro_run
    photo, speech = run/'data'/'heldout'/'photo.png', run/'data'/'heldout'/'speech.wav'
    out = tmp_path/'talk.mp4'
    _a2v('render', '--image', photo, '--audio', speech, '--out', out, '--run', run, '--mode', 'calibrated')
    assert out.exists() and out.with_suffix('.metrics.json').exists()
    bad = subprocess.run([A2V, 'render', '--image', tmp_path/'none.png', '--audio', speech, '--out', out, '--run', run],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and 'none.png' in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    missing = subprocess.run([A2V, 'render', '--image', photo, '--audio', speech, '--out', out, '--run', tmp_path/'empty'],
                             capture_output=True, text=True)
    assert missing.returncode == 1 and 'a2v ' in missing.stderr     # names the command that makes what is missing

@pytest.mark.slow
def test_render_motion_still_and_reference(micro_run, tmp_path):
    """A render blinks, moves its head and shuts its lips where the speech says so by default (the run's motion model is fitted
    once, in RUN/motion); --still moves only the mouth; --no-close-lips leaves the lips to Embed2Lat; --ref-pose copies a
    reference video's head roll; the metrics say which."""
    run = micro_run[0]
    photo, speech = run/'data'/'heldout'/'photo.png', run/'data'/'heldout'/'speech.wav'
    m = lambda name: json.loads((tmp_path/f'{name}.metrics.json').read_text())
    _a2v('render', '--image', photo, '--audio', speech, '--out', tmp_path/'moving.mp4', '--run', run, '--blink-rate', '40')
    assert (run/'motion'/'model.safetensors').exists()
    mo = m('moving')['motion']
    assert not mo['still'] and mo['pose'] == 'drawn' and mo['roll_std_deg'] > 0 and mo['blinks'] >= 1 and len(mo['roll']) == m('moving')['frames']
    _a2v('render', '--image', photo, '--audio', speech, '--out', tmp_path/'still.mp4', '--run', run, '--still')
    st = m('still')['motion']
    assert st['still'] and st['blinks'] == 0 and st['roll_std_deg'] == 0 and max(map(abs, st['roll'])) == 0 and st['roll_held_deg'] >= 0   # none drawn; the mouth's own turned back
    for x in (mo, st):                                  # the lips shut where the speech says so, --still or not (17_motion's probe)
        assert x['lips_shut'] is not None and len(x['shut']) == m('moving')['frames'] and 0 <= min(x['shut']) <= max(x['shut']) <= 1
    _a2v('render', '--image', photo, '--audio', speech, '--out', tmp_path/'open.mp4', '--run', run, '--still', '--no-close-lips')
    assert m('open')['motion']['lips_shut'] is None
    ref = next((run/'data'/'videos').glob('clip00*.mp4'))
    _a2v('render', '--image', photo, '--audio', speech, '--out', tmp_path/'ref.mp4', '--run', run, '--ref-pose', ref, '--head-motion', '2')
    rp = m('ref')['motion']
    assert rp['pose'] == 'reference' and rp['roll_std_deg'] > 0 and rp['roll'] != mo['roll']

@pytest.fixture(scope='module')
def renderer(micro_run):
    from a2v.render import Renderer
    return Renderer(micro_run[0])

def _photo(micro_run):
    from a2v.media import load_image
    return load_image(micro_run[0]/'data'/'heldout'/'photo.png')

@pytest.mark.slow
@pytest.mark.parametrize('kind', ['gray', 'rgba', 'huge'])
def test_render_photo_variants(micro_run, renderer, tmp_path, kind):
    "Grayscale, RGBA and very large photos render like the original."
    from PIL import Image
    im = Image.fromarray(_photo(micro_run))
    if kind == 'gray': im = im.convert('L')
    if kind == 'rgba': im = im.convert('RGBA')
    if kind == 'huge': im = im.resize((im.width * 8, im.height * 8))
    p = tmp_path/f'photo_{kind}.png'; im.save(p)
    m = renderer.render(p, np.zeros(8000, np.float32), tmp_path/'out.mp4', progress=False)
    assert m['frames'] == 13

@pytest.mark.slow
def test_render_bad_photos(micro_run, renderer, tmp_path):
    from PIL import Image
    from a2v.core import BadInputError
    blank = tmp_path/'blank.png'; Image.new('RGB', (300, 300), (120, 160, 200)).save(blank)
    with pytest.raises(BadInputError, match='blank.png: no face'): renderer.render(blank, np.zeros(8000, np.float32), tmp_path/'o.mp4')
    two = tmp_path/'two.png'; ph = _photo(micro_run); Image.fromarray(np.concatenate([ph, ph[:, ::-1]], 1)).save(two)
    with pytest.raises(BadInputError, match='2 faces found; choose one with --face-index'):
        renderer.render(two, np.zeros(8000, np.float32), tmp_path/'o.mp4')
    m = renderer.render(two, np.zeros(8000, np.float32), tmp_path/'o.mp4', face_index=1, progress=False)
    assert m['frames'] == 13

@pytest.mark.slow
def test_render_short_silent_and_unwritable(micro_run, renderer, tmp_path):
    from a2v.core import BadInputError
    from a2v.media import read_video
    photo = micro_run[0]/'data'/'heldout'/'photo.png'
    m = renderer.render(photo, np.zeros(int(0.2 * 16000), np.float32), tmp_path/'short.mp4', progress=False)
    assert m['frames'] == 5                                         # 0.2 s at 25 fps
    renderer.render(photo, np.zeros(3 * 16000, np.float32), tmp_path/'silent.mp4', mode='calibrated', progress=False,
                    motion=dict(still=True))
    v = read_video(tmp_path/'silent.mp4').frames.astype(np.float32)
    assert np.abs(np.diff(v, axis=0)).mean() < 2.0                  # silence, --still: a still face, no jitter
    renderer.render(photo, np.zeros(3 * 16000, np.float32), tmp_path/'moving.mp4', mode='calibrated', progress=False)
    mv = read_video(tmp_path/'moving.mp4').frames.astype(np.float32)
    assert np.abs(np.diff(mv, axis=0)).mean() > np.abs(np.diff(v, axis=0)).mean()   # by default the head moves a little
    with pytest.raises(BadInputError, match='too short'): renderer.render(photo, np.zeros(100, np.float32), tmp_path/'x.mp4')
    (tmp_path/'file').write_text('x')
    with pytest.raises(BadInputError, match='file/out.mp4'): renderer.render(photo, np.zeros(8000, np.float32), tmp_path/'file'/'out.mp4')

@pytest.mark.slow
def test_fit_generator_command_gives_the_run_its_own(micro_run, tmp_path):
    "Asked for, fit-generator fits the run's own generator (the run records it), and the next stages use it."
    import shutil
    from a2v.core import RunDir, generator_source, FITTED_GENERATOR, load_tensors
    run = tmp_path/'own'
    shutil.copytree(micro_run[0]/'clips', run/'clips')
    for f in ('config.json', 'manifest.jsonl'): shutil.copy(micro_run[0]/f, run/f)
    _a2v('fit-generator', '--run', run, '--steps', 3, '--set', 'generator.fit_max_frames=8', '--set', 'generator.fit_batch=2')
    cfg = RunDir(run).load_config()
    assert cfg.generator.fit_steps == 3 and generator_source(cfg) == FITTED_GENERATOR and (run/FITTED_GENERATOR).exists()
    assert json.loads((run/'generator'/'fit_metrics.json').read_text())['steps'] == 3
    _a2v('invert', '--run', run, '--set', 'invert.steps_first=2', '--set', 'invert.steps_next=1')
    cid = next(p.stem for p in (run/'latents').glob('*.safetensors'))
    assert load_tensors(run/'latents'/f'{cid}.safetensors')[1]['generator'] == FITTED_GENERATOR

@pytest.mark.slow
def test_photo_code_inverts_a_crop_once(micro_run, renderer):
    "The same photo (once as a path, once as pixels) is inverted once per renderer; its mirror image gets its own code."
    before = len(renderer._codes)
    c1, w1 = renderer.photo_code(micro_run[0]/'data'/'heldout'/'photo.png')
    c2, w2 = renderer.photo_code(_photo(micro_run))
    assert (c1 == c2).all() and w1 is w2 and len(renderer._codes) <= before + 1
    c3, w3 = renderer.photo_code(np.ascontiguousarray(_photo(micro_run)[:, ::-1]))
    assert not (c3 == c1).all() and w3 is not w1 and not (w3 == w1).all()

def test_photo_codes_invert_new_crops_once(micro_run, monkeypatch):
    "Several photos: the crops not seen before are inverted once, at once (a process each on a CPU), each to the code it gets alone."
    import a2v.invert
    from a2v.core import RunDir
    from a2v.render import Renderer, photo_workers
    calls, real = [], a2v.invert.invert_images
    monkeypatch.setattr(a2v.invert, 'invert_images', lambda G, ims, *a, **k: (calls.append((len(ims), k.get('workers'))), real(G, ims, *a, **k))[1])
    cfg = RunDir(micro_run[0]).load_config()
    cfg.invert.steps_first, cfg.render.photo_steps_factor = 3, 1.0
    photo = _photo(micro_run); mirror = np.ascontiguousarray(photo[:, ::-1])
    r = Renderer(micro_run[0], cfg)
    (c1, w1), (c2, w2), (c3, w3) = r.photo_codes([photo, mirror, photo])
    n = photo_workers(cfg.invert, torch.device('cpu'), 2)                  # 2 on a multi-core CPU ('auto')
    assert calls == [(2, n)] and w3 is w1 and (c3 == c1).all() and not (w2 == w1).all()
    assert r.photo_code(mirror)[1] is w2 and calls == [(2, n)]              # seen: not inverted again
    _, alone = Renderer(micro_run[0], cfg).photo_code(mirror)
    assert calls == [(2, n), (1, 1)] and torch.allclose(alone, w2, atol=1e-4 if n == 2 else 1e-3)   # alone either way (13_invert)

def test_run_summary_reads_the_invert_stage_report(micro_run, monkeypatch):
    "The render's summary takes latents/report.json while no latents file is newer; after one is, it measures again."
    import os, a2v.invert
    from a2v.render import run_summary
    run = micro_run[0]; rep = run/'latents'/'report.json'
    calls, real = [], a2v.invert.inversion_report
    monkeypatch.setattr(a2v.invert, 'inversion_report', lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    s = run_summary(run)['inversion']
    assert calls == [] and s == json.loads(rep.read_text())
    lat = next((run/'latents').glob('*.safetensors')); st = lat.stat()
    os.utime(lat, (st.st_atime, rep.stat().st_mtime + 10))
    try: s2 = run_summary(run)['inversion']
    finally: os.utime(lat, (st.st_atime, st.st_mtime))              # the run is shared by this module's tests
    assert calls == [1] and s2['frames'] == s['frames'] and abs(s2['psnr_mean'] - s['psnr_mean']) < 1e-3

def test_photo_inversion_takes_its_own_steps(micro_run, monkeypatch):
    "The photo is inverted with render.photo_steps_factor × invert.steps_first steps (a clip's frame 0: 1×)."
    import a2v.invert
    from a2v.core import RunDir
    from a2v.render import Renderer
    seen, real = [], a2v.invert.invert_images
    monkeypatch.setattr(a2v.invert, 'invert_images', lambda *a, **k: (seen.append(k.get('steps')), real(*a, **k))[1])
    cfg = RunDir(micro_run[0]).load_config()
    cfg.invert.steps_first, cfg.render.photo_steps_factor = 4, 2.5
    crop, w = Renderer(micro_run[0], cfg).photo_code(_photo(micro_run))
    assert seen == [10] and w.shape[0] > 1

@pytest.mark.slow
def test_motion_ceiling_renders_each_held_out_clip_on_each_photo(micro_run, renderer):
    "motion_ceiling: per held-out clip its frames, its reconstruction, then its μ* on each photo; the clip's face from its truth json."
    from a2v.evaluation import motion_ceiling, _truth_of
    from a2v.media import SAMPLE_PHOTOS
    from a2v.vae import load_split
    run = micro_run[0]; val = load_split(run)['val']; photos = ('grace_hopper',)   # one photo keeps it short
    m = motion_ceiling(run, renderer=renderer, photos=photos)
    assert val and [(x['clip'], x['rendered_on']) for x in m['renders']] == [(c, p) for c in val for p in ('its own frames', 'its own codes', *photos)]
    for x in m['renders']:
        assert x['face'] == _truth_of(run, x['clip'])[0]['source_face'] and x['face'] in SAMPLE_PHOTOS
        assert x['r_truth'] is None or -1 <= x['r_truth'] <= 1
    kinds = ('frames', 'reconstruction', 'same_face', 'other_face')
    assert sum(m[k]['n'] for k in kinds) == sum(x['r_truth'] is not None for x in m['renders'])
    assert m['reconstruction']['n'] == sum(x['r_truth'] is not None for x in m['renders'] if x['rendered_on'] == 'its own codes')
    only = motion_ceiling(run, renderer=renderer, photos=(), clips=[val[0], 'no_such_clip'])   # a clip without truth is left out
    assert [(x['clip'], x['rendered_on']) for x in only['renders']] == [(val[0], 'its own frames'), (val[0], 'its own codes')]
    still = motion_ceiling(run, renderer=renderer, photos=photos, clips=val[:1], scale=0.0)   # no motion: the photo stands still
    assert still['renders'][-1]['rendered_on'] == photos[0] and still['renders'][-1]['r_truth'] is None

def test_stage_notebook_runs_without_its_slow_cells(tmp_path):
    "The pipeline's notebook runner leaves out `#| slow` cells and `nbdev_export()`: here they would raise, the others must run."
    import nbformat
    from a2v.core import get_config
    from a2v.pipeline import _run_notebook
    v4, boom = nbformat.v4, "raise RuntimeError('a slow cell ran')"
    nb = v4.new_notebook(metadata={'kernelspec': {'name': 'python3', 'language': 'python', 'display_name': 'Python 3'}}, cells=[
        v4.new_code_cell("run_dir = ''\npreset = ''\noverrides = '{}'", metadata={'tags': ['parameters']}),
        v4.new_code_cell(f"#| slow\n{boom}"), v4.new_code_cell(f"\n#| hide\n#|slow\n{boom}"),
        v4.new_code_cell("import os\nfrom pathlib import Path\nPath(run_dir, 'stage.txt').write_text(preset + ' ' + os.getcwd())"),
        v4.new_code_cell("#| hide\nimport nbdev; nbdev.nbdev_export()")])                 # raises: no nbdev project here
    (tmp_path/'nbs').mkdir(); nbformat.write(nb, tmp_path/'nbs'/'99_stage.ipynb')
    import os
    here = os.getcwd(); os.chdir(tmp_path)                 # a relative run directory, as `make demo` gives (runs/demo)
    try: _run_notebook(tmp_path/'nbs', '99_stage.ipynb', Path('run'), get_config('tiny'), 'stage')
    finally: cwd_after = os.getcwd(); os.chdir(here)
    assert cwd_after == str(tmp_path)                      # the process never changed directory (stages run side by side)
    assert (tmp_path/'run'/'stage.txt').read_text() == f"tiny {tmp_path/'nbs'}"   # the parameters arrived; the kernel ran in nbs/
    ran = nbformat.read(tmp_path/'run'/'notebooks'/'99_stage.ipynb', as_version=4)
    assert not any(boom in c.source or 'nbdev_export' in c.source for c in ran.cells)   # nor has the executed copy

@pytest.mark.slow
def test_zz_pipeline_repairs_a_finished_run_whose_latents_went(micro_run, tmp_path):
    "A kept clip's latents deleted after the run finished: the pipeline inverts that clip again, the VAE and Embed2Lat train again (it used to skip every stage)."
    import shutil
    run = tmp_path/'run'; shutil.copytree(micro_run[0], run)
    gone = sorted((run/'latents').glob('*.safetensors'))[0]; gone.unlink()
    sets = [a for s in MICRO for a in ('--set', s)]
    r = _a2v('pipeline', '--run', run, '--preset', 'tiny', '--no-notebooks', *sets)
    assert f"invert: its inputs changed since it ran (clip {gone.stem}'s latents missing): running again" in r.stdout + r.stderr, r.stdout
    assert gone.exists()
    for stage in ('train-vae ...', 'train-embed2lat ...'): assert f'[a2v] {stage}' in r.stdout + r.stderr
    r = _a2v('pipeline', '--run', run, '--preset', 'tiny', '--no-notebooks', *sets)
    assert '[a2v] invert: done, skipped' in r.stdout + r.stderr and '[a2v] train-vae: done, skipped' in r.stdout + r.stderr
