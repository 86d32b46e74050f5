"Benchmark of a2v.sample_data: building the 40-clip data set (3–6 s clips + the 4 bad ones) on this machine's cores."
import os, resource, tempfile, time
from pathlib import Path

from a2v.sample_data import make_sample_data

def bench() -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as d:
        cores = len(os.sched_getaffinity(0))
        cpu = lambda: sum(getattr(resource.getrusage(w), k) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                          for k in ('ru_utime', 'ru_stime'))
        t, c = time.perf_counter(), cpu()
        out = make_sample_data(Path(d)/'s', clips=40, seed=0, seconds=(3.0, 6.0), progress=False)
        dt, dc = time.perf_counter() - t, cpu() - c
        frames = sum(r['n_frames'] for r in out); secs = sum(r['duration_s'] for r in out)
        note = f'{len(out)} clips (40 good + 4 bad), {secs:.0f} s of video, {cores} processes; target < 120 s on 2 cores'
        rows.append({'what': 'sample-data: build 40 clips of 3-6 s', 'value': round(dt, 1), 'unit': 's', 'note': note})
        rows.append({'what': 'sample-data: throughput', 'value': round(len(out) / dt, 2), 'unit': 'clips/s', 'note': note})
        rows.append({'what': 'sample-data: rendered frames', 'value': round(frames / dt, 1), 'unit': 'frames/s', 'note': note})
        rows.append({'what': 'sample-data: CPU time (all processes)', 'value': round(dc, 1), 'unit': 's',
                     'note': f'CPU / 2 = {dc / 2:.0f} s is the wall time on 2 otherwise idle cores'})
    return rows

if __name__ == '__main__':
    for r in bench(): print(r)
