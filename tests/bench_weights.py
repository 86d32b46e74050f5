"Benchmarks of a2v.weights: LPIPS throughput on this machine (CPU, or the default device) and the set-up check."
import time
import torch
from a2v.core import get_device
from a2v.lpips import get_lpips, prepare_offline_weights


def _time(f, reps:int=3) -> float:
    "Best of `reps` seconds per call (the machine is shared: the minimum is the least disturbed)."
    f(); best = float('inf')                                # warm-up
    for _ in range(reps):
        t = time.perf_counter(); f(); best = min(best, time.perf_counter() - t)
    return best


def bench() -> list[dict]:
    "Rows {'what', 'value', 'unit'}: LPIPS image pairs/s (fwd+bwd at 64² as in the tiny inversion, fwd at 256²)."
    torch.set_num_threads(min(2, torch.get_num_threads()))
    dev = get_device()
    rows = []
    t = time.perf_counter(); prepare_offline_weights(progress=False)
    rows.append(dict(what='prepare_offline_weights (already done)', value=(time.perf_counter() - t) * 1e3, unit='ms'))
    for net, size, n, what in (('alex', 64, 8, 'fwd+bwd'), ('alex', 256, 1, 'fwd'), ('vgg', 64, 8, 'fwd+bwd'),
                               ('vgg', 256, 1, 'fwd')):
        m = get_lpips(net, device=dev)
        x, y = (torch.rand(n, 3, size, size, device=dev) * 2 - 1 for _ in range(2))
        def fwd():
            with torch.no_grad(): m(x, y).sum().item()
        def fwd_bwd():
            a = x.clone().requires_grad_(True); m(a, y).sum().backward(); a.grad.sum().item()
        sec = _time(fwd if what == 'fwd' else fwd_bwd)
        rows.append(dict(what=f'LPIPS-{net} {size}² {what}, batch {n} ({dev.type})', value=n / sec, unit='image pairs/s'))
    return rows


if __name__ == '__main__':
    for r in bench(): print(f"{r['what']:45} {r['value']:10.1f} {r['unit']}")
