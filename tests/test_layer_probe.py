"Tests of a2v.vae.layer_probe: the per-layer ridge probe of Δw against the true mouth opening, cross-validated by clip."
import json, os, subprocess, sys
from pathlib import Path
import numpy as np, pytest, torch
from a2v.core import RunDir, load_tensors, save_tensors
from a2v.vae import layer_probe, save_layer_probe, make_synthetic_run, _clip_folds

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    return make_synthetic_run(tmp_path_factory.mktemp('probe')/'run', n_clips=6, w_dim=16, seconds=(2.0, 3.0), audio=False)

def test_finds_the_layers_that_carry_the_mouth(run):
    res = layer_probe(run, folds=3)
    assert sorted(res['best']) == [5, 6, 7]
    r2 = np.array(res['r2_mean'])
    assert r2[5:8].min() > 0.9 and np.delete(r2, [5, 6, 7]).max() < 0.1, r2
    assert np.array(res['r2_folds']).shape == (16, 3) and res['clips'] == 6 and res['folds'] == 3
    assert res['readings']['0-based [5, 6, 7]'] > res['readings']['ordinal 5th-7th = [4, 5, 6]']

def test_follows_the_motion_when_it_lives_elsewhere(run, tmp_path):
    "Same clips with the layers rolled by −3: the mouth now lives on layers 2, 3, 4, and the probe must say so."
    moved = tmp_path/'moved'
    for p in (run/'truth').glob('*.json'): (moved/'truth').mkdir(parents=True, exist_ok=True); (moved/'truth'/p.name).write_text(p.read_text())
    (moved/'manifest.jsonl').write_text((run/'manifest.jsonl').read_text())
    for c in RunDir(run).clip_ids():
        ws = load_tensors(RunDir(run).latents(c))[0]['ws']
        save_tensors(RunDir(moved).latents(c), {'ws': torch.roll(ws, -3, dims=1)})
    res = layer_probe(moved, folds=3)
    assert sorted(res['best']) == [2, 3, 4] and min(res['r2_mean'][2:5]) > 0.9
    assert res['readings']['ordinal 5th-7th = [4, 5, 6]'] > res['readings']['0-based [5, 6, 7]']

def test_folds_split_by_clip():
    ids = [f'c{i}' for i in range(11)]
    folds = _clip_folds(ids, 4, seed=0)
    assert sorted(sum(folds, [])) == sorted(ids) and len(folds) == 4 and min(map(len, folds)) >= 2
    assert _clip_folds(ids, 4, seed=0) == folds != _clip_folds(ids, 4, seed=1)

def test_no_truth_is_a_one_line_error(tmp_path):
    r = make_synthetic_run(tmp_path/'r', n_clips=3, w_dim=8, seconds=(1.0, 1.5), audio=False)
    for p in (r/'truth').glob('*.json'): p.unlink()
    with pytest.raises(Exception, match='needs mouth-opening truth for ≥ 2 inverted clips, found 0'): layer_probe(r)

def test_cli_writes_json_and_figure(run, tmp_path):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'A2V_FIGURES': ''}
    p = subprocess.run([sys.executable, '-m', 'a2v.cli', 'probe-layers', '--run', str(run), '--folds', '3'],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    rows = [l for l in p.stdout.splitlines() if l[:5].strip().isdigit()]
    assert len(rows) == 16 and float(rows[6].split()[1]) > 0.9 and float(rows[0].split()[1]) < 0.1, p.stdout
    saved = json.loads((run/'vae'/'layer_probe.json').read_text())
    assert sorted(saved['best']) == [5, 6, 7] and (run/'figures'/'14_layer_probe.png').stat().st_size > 1000
    bad = subprocess.run([sys.executable, '-m', 'a2v.cli', 'probe-layers', '--run', str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 1 and bad.stderr.startswith('a2v: error:') and len(bad.stderr.strip().splitlines()) == 1
