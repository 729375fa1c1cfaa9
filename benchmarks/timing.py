# Shared helpers for the benchmark scripts in this folder (run as `python benchmarks/<script>.py`, which
# puts this folder on sys.path): one warm-up call then `repeats` timed calls, and the markdown tables the
# scripts print for docs/PERFORMANCE.md.
# Entry points: timed(fn, repeats, pick=min) -> seconds; markdown_table(header, rows) -> str.
import time
def timed(fn, repeats: int, pick=min) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return pick(times)

def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(str(cell) for cell in line) + " |" for line in lines)
