# Shared timing helper for the benchmark scripts in this folder (run as `python benchmarks/<script>.py`, which
# puts this folder on sys.path): one warm-up call, then `repeats` timed calls.
# Entry point: timed(fn, repeats, pick=min) -> seconds.
import time
def timed(fn, repeats: int, pick=min) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return pick(times)
