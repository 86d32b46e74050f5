"Render nbs/index.ipynb to README.md (markdown cells as they are, code cells as python blocks); nbdev_readme needs quarto."
import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def render(nb_path=ROOT/'nbs'/'index.ipynb') -> str:
    out = ['<!-- generated from nbs/index.ipynb by tools/make_readme.py: edit the notebook, then `make readme` -->\n']
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = ''.join(c['source']).strip()
        if not src or src.startswith('#| hide'): continue
        out.append(src + '\n' if c['cell_type'] == 'markdown' else f"```python\n{src}\n```\n")
    return '\n'.join(out)

if __name__ == '__main__':
    text = render()
    if '--check' in sys.argv: sys.exit(0 if (ROOT/'README.md').read_text() == text else 1)
    (ROOT/'README.md').write_text(text)
