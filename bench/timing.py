"""Timing protocol shared by the PyTorch-Python benchmark twins (same as bench/timing.ts)."""
import statistics
import time


def timed(fn, warmup, reps):
    """Median seconds of `reps` calls after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)
