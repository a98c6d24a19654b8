"""Timing protocol shared by the PyTorch-Python benchmark twins (same as bench/timing.ts)."""
import ctypes
import resource
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


def keep_host_memory():
    """glibc's mallopt(M_MMAP_MAX, 0) and mallopt(M_TRIM_THRESHOLD, -1): freed memory stays in the heap for
    reuse instead of going back to the kernel, as on the TypeScript side by default (T3D_MALLOC=keep)."""
    libc = ctypes.CDLL('libc.so.6')
    m_trim_threshold, m_mmap_max = -1, -4
    if libc.mallopt(m_mmap_max, 0) != 1 or libc.mallopt(m_trim_threshold, -1) != 1:
        raise RuntimeError('mallopt refused the settings')


def measure(step, cfg):
    """{"step_s": median step seconds, "minor_faults": page faults of one more step}; cfg 'keep_host_memory'
    first switches the C library to keeping freed memory."""
    if cfg.get('keep_host_memory'):
        keep_host_memory()
    step_s = timed(step, cfg['warmup'], cfg['reps'])
    f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    return {'step_s': step_s, 'minor_faults': resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}
