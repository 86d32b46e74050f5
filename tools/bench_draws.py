"""`make bench-draws`: how far one demo run's numbers carry (#33, item 5).

A run is one draw of its data and one draw of its training seed. This trains the tiny preset on several sample-data
draws (each its own clips, crops and inverted codes) × several training seeds (the VAE's and Embed2Lat's weights,
batch order and split), renders both built-in photos saying the held-out sentences on each, judges every render
with the face mesh (`a2v.evaluation.motion_report`), and prints the distribution of every measure and its worst case
against the targets. It resumes: finished draws and seeds are read back from RUNS/bench.json.

    python tools/bench_draws.py [--draws 1 2 3] [--seeds 0 1 2] [--runs runs/bench-draws]

About 50 min on 2 CPU cores for 3 × 3 (each draw's crop and inversion 5–8 min, each seed 3 min with both judgements).
"""
import argparse, json, os, time
from pathlib import Path
import numpy as np

UPSTREAM = ['sample-data', 'crop', 'fit-generator', 'invert', 'embed-audio']
SHARED = ('data', 'clips', 'manifest.jsonl', 'generator', 'latents', 'audio', 'encoder')   # a seed run reads these from its draw

# measure in a report: (key in `motion_report`'s answer, worst = min or max, target test, target text)
TARGETS = [
    ('min_r_truth_mesh', min, lambda v: v >= 0.6, 'mesh lip sync r ≥ 0.6'),
    ('max_abs_lag_truth_mesh', max, lambda v: v <= 1, 'mesh lag ≤ 1 frame'),
    ('blink_rate_ratio', None, lambda v: 0.5 <= v <= 2, 'blink rate ½–2× training'),
    ('roll_ratio', None, lambda v: 0.5 <= v <= 2, 'roll spread ½–2× training'),
    ('shift_ratio', None, lambda v: 0.5 <= v <= 2, 'position spread ½–2× training'),
    ('min_bilabial_closure', min, lambda v: v >= 0.7, 'bilabial closure ≥ 0.7'),
    ('max_silence_rest', max, lambda v: v <= 1 / 3, 'rest in silence ≤ ⅓'),
    ('min_face_score', min, lambda v: v >= 0.9, 'mesh face score ≥ 0.9'),
]

def _seed_run(draw:Path, run:Path, cfg):
    "A run directory that shares its draw's data, crops, codes and audio, with its own config (seed)."
    from a2v.core import RunDir
    run.mkdir(parents=True, exist_ok=True)
    for name in SHARED:
        if (draw/name).exists() and not (run/name).exists(): os.symlink((draw/name).resolve(), run/name)
    RunDir(run).save_config(cfg)

def _measures(rep:dict) -> dict:
    "The measures of `TARGETS` in a `motion_report` (blinks and head motion: its half-minute renders against the training clips')."
    return {k: rep.get(k) for k, *_ in TARGETS}

def one(draw:int, seed:int, runs:Path, log=print) -> dict:
    "Train and judge one (draw, seed), with the render's defaults and without shut lips (`before`); the draw's upstream stages run first if they have not."
    from a2v.core import get_config
    from a2v.pipeline import run_pipeline, run_stage
    from a2v.evaluation import motion_report
    base = runs/f'draw{draw}'
    t0 = time.time()
    run_pipeline(base, get_config('tiny', seed=draw), notebooks=False, stages=UPSTREAM, log=log)
    t1 = time.time()
    run = base/f'seed{seed}'; cfg = get_config('tiny', seed=seed)
    _seed_run(base, run, cfg)
    for st in ('train-vae', 'train-embed2lat'): run_stage(st, run, cfg, progress=False)   # a trained model is reloaded, not retrained
    rep = motion_report(run, cfg)
    before = motion_report(run, cfg, motion=dict(close_lips=False))
    clips = sum(1 for _ in open(base/'manifest.jsonl'))
    return dict(draw=draw, seed=seed, clips=clips, upstream_s=round(t1 - t0), seed_s=round(time.time() - t1),
                **_measures(rep), report=rep, before=_measures(before), before_report=before)

def table(rows:list, before:bool=False) -> str:
    "Markdown: each measure's distribution over (draw, seed) and its worst case against the target (`before`: without shut lips)."
    out = ['| measure | target | mean | worst | worst (draw, seed) | met |', '|---|---|---|---|---|---|']
    for key, f, ok, text in TARGETS:
        vals = [((r['before'] if before else r)[key], r['draw'], r['seed']) for r in rows if (r['before'] if before else r).get(key) is not None]
        if not vals: out.append(f'| {key} | {text} | – | – | – | undefined |'); continue
        if f is None: worst = max(vals, key=lambda v: max(v[0], 1 / max(v[0], 1e-9)))   # furthest from 1×
        else: worst = f(vals, key=lambda v: v[0])
        allok = all(ok(v[0]) for v in vals)
        out.append(f'| {key} | {text} | {np.mean([v[0] for v in vals]):.3g} | {worst[0]:.3g} | ({worst[1]}, {worst[2]}) | '
                   f'{"yes" if allok else f"no ({sum(not ok(v[0]) for v in vals)}/{len(vals)} miss)"} |')
    return '\n'.join(out)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--draws', type=int, nargs='+', default=[1, 2, 3])
    p.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2])
    p.add_argument('--runs', type=Path, default=Path('runs/bench-draws'))
    p.add_argument('--upstream-only', action='store_true', help='only crop and invert the draws')
    a = p.parse_args(argv)
    import torch; torch.set_num_threads(min(torch.get_num_threads(), 2))
    from a2v.core import atomic_write_json
    a.runs.mkdir(parents=True, exist_ok=True); out = a.runs/'bench.json'
    done = json.loads(out.read_text()) if out.exists() else []
    if a.upstream_only:
        from a2v.core import get_config
        from a2v.pipeline import run_pipeline
        for d in a.draws: run_pipeline(a.runs/f'draw{d}', get_config('tiny', seed=d), notebooks=False, stages=UPSTREAM)
        return
    for d in a.draws:
        for s in a.seeds:
            if any(r['draw'] == d and r['seed'] == s for r in done): continue
            done.append(one(d, s, a.runs)); atomic_write_json(out, done)
            r = done[-1]; print(f"draw {d} seed {s}: " + ', '.join(f'{k} {r[k]:.3g}' for k, *_ in TARGETS if r.get(k) is not None), flush=True)
    rows = [r for r in done if r['draw'] in a.draws and r['seed'] in a.seeds]
    print(f"\n{len(rows)} (draw, seed) pairs: draws {a.draws} ({', '.join(str(r['clips']) for r in rows if r['seed'] == a.seeds[0])} clips), seeds {a.seeds}\n")
    print(table(rows))
    print(f"\nthe same renders without shut lips (render.close_lips=False):\n")
    print(table(rows, before=True))

if __name__ == '__main__': main()
