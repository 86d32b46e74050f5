"`make bench`: run every tests/bench_*.py `bench()` and print one table (rows: what, value, unit, note)."
import importlib.util, platform, sys, time, traceback
from pathlib import Path

def main(pattern='bench_*.py'):
    import torch
    torch.set_num_threads(min(torch.get_num_threads(), 2) if not torch.cuda.is_available() else torch.get_num_threads())
    root = Path(__file__).resolve().parents[1]/'tests'
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    print(f"a2v benchmarks on {dev}, torch {torch.__version__}\n")
    rows, failed = [], []
    for f in sorted(root.glob(pattern)):
        spec = importlib.util.spec_from_file_location(f.stem, f); mod = importlib.util.module_from_spec(spec)
        t0 = time.time()
        try:
            spec.loader.exec_module(mod)
            for r in mod.bench(): rows.append({'module': f.stem[6:], **r})
        except Exception as e:
            failed.append(f.name); traceback.print_exc()
        print(f"  {f.name}: {time.time() - t0:.0f} s", file=sys.stderr)
    w = max([len(r['what']) for r in rows] + [10])
    print(f"{'module':10s} {'what':{w}s} {'value':>12s}  unit")
    for r in rows:
        v = r['value']; v = f"{v:12.4g}" if isinstance(v, (int, float)) else f"{v!s:>12s}"
        print(f"{r['module']:10s} {r['what']:{w}s} {v}  {r.get('unit', '')}" + (f"   ({r['note']})" if r.get('note') else ''))
    if failed: print(f"\nfailed: {', '.join(failed)}"); sys.exit(1)

if __name__ == '__main__': main(*sys.argv[1:])
