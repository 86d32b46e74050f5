"Runs last (file order): the notebooks' tests and the test suite leave the checkout as they found it."
import subprocess
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BEFORE = ROOT/'.venv'/'.a2v-status-before'   # `make test` records `git status --porcelain` here before any test runs

def _status() -> str:
    return subprocess.run(['git', 'status', '--porcelain', '--untracked-files=all'], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout

@pytest.mark.skipif(not (ROOT/'.git').exists(), reason='not a git checkout')
def test_tests_leave_the_checkout_unchanged():
    "`git status` after `make test` equals `git status` before it (on a fresh clone: clean)."
    before = BEFORE.read_text() if BEFORE.exists() else ''
    now = _status()
    changed = sorted(set(now.splitlines()) - set(before.splitlines()))
    assert not changed, f"the tests changed the checkout: {changed[:10]}"
