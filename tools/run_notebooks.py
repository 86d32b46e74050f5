"`make notebooks`: execute every notebook in nbs/ in place (default parameters), so outputs and figures are kept."
import re, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

def main(*names):
    nbs = Path(__file__).resolve().parents[1]/'nbs'
    for p in sorted(nbs.glob('*.ipynb')):
        if names and p.name not in names: continue
        t0 = time.time()
        nb = nbformat.read(p, as_version=4)
        skipped = {i: c.source for i, c in enumerate(nb.cells)     # `#| eval: false` cells are not run (as in nbdev)
                   if c.cell_type == 'code' and re.search(r'^#\|\s*eval:\s*false', c.source, re.M)}
        for i in skipped: nb.cells[i].source = ''
        NotebookClient(nb, timeout=1200, kernel_name='python3', resources={'metadata': {'path': str(nbs)}}).execute()
        for i, src in skipped.items(): nb.cells[i].source = src; nb.cells[i].outputs = []
        nbformat.write(nb, p)
        print(f"{p.name}: {time.time() - t0:.0f} s")

if __name__ == '__main__': main(*sys.argv[1:])
