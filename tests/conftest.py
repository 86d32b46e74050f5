"What several test files share: the micro run (every stage of the tiny preset at a micro scale), made once per session."
import os, subprocess, sys, time
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
A2V = str(Path(sys.executable).parent/'a2v')
MICRO = ['sample_data.clips=3', 'sample_data.seconds=[2.0, 3.0]',          # the shipped generator, as the demo
         'invert.steps_first=12', 'invert.steps_next=2',
         'vae.epochs=4', 'embed2lat.epochs=3']

def _a2v(*args, timeout=1500):
    r = subprocess.run([A2V, *map(str, args)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert r.returncode == 0, f"a2v {' '.join(map(str, args))} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r

@pytest.fixture(scope='session')
def micro_run(tmp_path_factory):
    "(run directory, seconds the pipeline took): test_app.py's page and test_pipeline.py's checks read the same run."
    run = tmp_path_factory.mktemp('micro')/'run'
    sets = [a for s in MICRO for a in ('--set', s)]
    t0 = time.time()
    _a2v('pipeline', '--run', os.path.relpath(run, ROOT), '--preset', 'tiny', *sets)   # relative, as `make demo` gives it:
    return run, time.time() - t0                                     # stages side by side must not depend on the cwd
