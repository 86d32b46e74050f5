"The repository's own invariants: exported package in sync with nbs/, notebooks committed clean, CI = README."
import re, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _copy_repo(tmp_path):
    for name in ('nbs', 'a2v'): shutil.copytree(ROOT/name, tmp_path/name, ignore=shutil.ignore_patterns('__pycache__', '.ipynb_checkpoints'))
    for name in ('settings.ini', 'setup.py'): shutil.copy(ROOT/name, tmp_path/name)
    return tmp_path

def test_package_in_sync_with_notebooks(tmp_path):
    "Exporting the notebooks again changes nothing in a2v/: the committed package is what nbs/ says."
    repo = _copy_repo(tmp_path)
    subprocess.run([BIN/'nbdev_export'], cwd=repo, check=True, capture_output=True)
    stale = [p.name for p in sorted((ROOT/'a2v').glob('*.py'))
             if not (repo/'a2v'/p.name).exists() or (repo/'a2v'/p.name).read_text() != p.read_text()]
    new = [p.name for p in (repo/'a2v').glob('*.py') if not (ROOT/'a2v'/p.name).exists()]
    assert not stale and not new, f"a2v/ is out of date with nbs/ (run `make export`): {stale + new}"

def test_notebooks_are_clean(tmp_path):
    "nbdev_clean changes no notebook (no execution counts or metadata noise), and keeps papermill's tag."
    repo = _copy_repo(tmp_path)
    subprocess.run([BIN/'nbdev_clean'], cwd=repo, check=True, capture_output=True)
    dirty = [p.name for p in sorted((ROOT/'nbs').rglob('*.ipynb')) if '.ipynb_checkpoints' not in p.parts
             and (repo/'nbs'/p.relative_to(ROOT/'nbs')).read_bytes() != p.read_bytes()]
    assert not dirty, f"notebooks not clean (run `make clean-nbs`): {dirty}"

def test_stage_notebooks_keep_parameters_tag():
    "Every notebook that papermill drives (the pipeline's stages and the driver) has exactly one `parameters` cell."
    import json
    from a2v.pipeline import STAGES
    for nb in ['pipeline.ipynb'] + [nb for _, _, nb, _ in STAGES]:
        cells = json.loads((ROOT/'nbs'/nb).read_text())['cells']
        tagged = [c for c in cells if 'parameters' in c.get('metadata', {}).get('tags', [])]
        assert len(tagged) == 1, f"{nb}: {len(tagged)} cells tagged 'parameters'"

def test_ci_runs_the_readme_test_command():
    readme = (ROOT/'README.md').read_text()
    assert '`make test`' in readme or 'make test\n' in readme
    ci = [l.strip() for l in (ROOT/'.ci'/'run').read_text().splitlines() if l.strip() and not l.startswith('#')]
    assert ci[-1] == 'make test'

def test_import_is_light():
    "`import a2v` and the command's --help import neither torch nor transformers."
    code = 'import sys, a2v, a2v.core, a2v.cli; print(sorted(m for m in ("torch", "transformers", "av") if m in sys.modules))'
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == '[]', out.stdout

def test_readme_made_from_index_notebook():
    sys.path.insert(0, str(ROOT/'tools'))
    from make_readme import render
    assert (ROOT/'README.md').read_text() == render(), "README.md is out of date with nbs/index.ipynb (run `make readme`)"

def test_bench_draws_table_names_the_worst_case():
    "`make bench-draws`'s table: per measure the worst (draw, seed) against its target, ratios judged by their distance from 1×."
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
    from bench_draws import table, TARGETS
    row = lambda d, s, r, ratio: {'draw': d, 'seed': s, 'min_r_truth_mesh': r, 'blink_rate_ratio': ratio, 'before': {'min_r_truth_mesh': r - .1}}
    t = table([row(1, 0, 0.8, 1.0), row(2, 1, 0.55, 0.4), row(3, 2, 0.7, 2.2)])
    lines = {l.split(' | ')[0][2:]: l for l in t.splitlines()[2:]}
    assert len(lines) == len(TARGETS)
    assert '| 0.55 | (2, 1) | no (1/3 miss) |' in lines['min_r_truth_mesh']
    assert '| 0.4 | (2, 1) | no (2/3 miss) |' in lines['blink_rate_ratio']       # 0.4× is further from 1× than 2.2×
    assert 'undefined' in lines['min_face_score']
    assert '| 0.45 | (2, 1) |' in table([row(1, 0, 0.8, 1.0), row(2, 1, 0.55, 0.4)], before=True).splitlines()[2]
