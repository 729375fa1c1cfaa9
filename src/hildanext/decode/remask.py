# The remask pass's selection (decode.remask, [INFERRED]; DESIGN.md open choice 25), pure functions the decoder
# calls after it has scored every committed answer token: windows slide over the answer, and each remasks its
# least confident tokens (bounded by min_ratio and target_ratio, the most confident kept safe by
# percentile_safety). Entry points: window_spans, safety_cap, window_quota, select_windows, scored_length,
# remasked_positions, remask_record; the records Window and RemaskRecord.
import math
from dataclasses import dataclass
from fractions import Fraction
from hildanext.config.decode import RemaskParams
@dataclass
class Window:
    start: int
    end: int
    candidates: list[int]
    remasked: list[tuple[int, int, float]]

@dataclass
class RemaskRecord:
    windows: list[Window]
    changed: list[tuple[int, int, int]]
    @property
    def remasked(self) -> int:
        return sum(len(w.remasked) for w in self.windows)

def window_spans(length: int, size: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) windows of size tokens every stride tokens over [0, length); the last one ends at length."""
    if length == 0:
        return []
    starts = list(range(0, max(length - size, 0) + 1, stride))
    if starts[-1] + size < length:
        starts.append(length - size)
    return [(s, min(s + size, length)) for s in starts]

def safety_cap(values: list[float], percentile: float) -> float:
    """Nearest-rank percentile: the ceil(p * n)-th smallest value; tokens at or above it stay safe."""
    rank = math.ceil(Fraction(str(percentile)) * len(values))
    return sorted(values)[max(rank, 1) - 1]

def window_quota(below: int, width: int, params: RemaskParams) -> int:
    """How many tokens of a window end up masked: #below tau clamped to [ceil(min), round-half-up(target)], min wins."""
    low = math.ceil(Fraction(str(params.min_ratio)) * width)
    high = math.floor(Fraction(str(params.target_ratio)) * width + Fraction(1, 2))
    return max(low, min(below, high))

def select_windows(tokens: list[int], conf: list[float], tau: float, params: RemaskParams) -> list[Window]:
    """Per window: candidates below the safety cap, then the quota's least confident (earlier picks counted)."""
    chosen: set[int] = set()
    windows = []
    for start, end in window_spans(len(conf), params.block_size, params.block_stride):
        cap = safety_cap(conf[start:end], params.percentile_safety)
        candidates = [i for i in range(start, end) if conf[i] < cap]
        quota = window_quota(sum(conf[i] < tau for i in candidates), end - start, params)
        need = quota - sum(i in chosen for i in range(start, end))
        fresh = sorted((i for i in candidates if i not in chosen), key=lambda i: (conf[i], i))[: max(need, 0)]
        chosen.update(fresh)
        windows.append(Window(start, end, candidates, [(i, tokens[i], conf[i]) for i in sorted(fresh)]))
    return windows

def scored_length(ids: list[int], stop_ids) -> int:
    """How many answer tokens are scored: all but a trailing stop token."""
    return len(ids) - int(bool(ids) and ids[-1] in stop_ids)

def remasked_positions(windows: list[Window]) -> list[int]:
    return sorted(i for w in windows for i, _, _ in w.remasked)

def remask_record(windows: list[Window], before: list[int], after: list[int]) -> RemaskRecord:
    """The windows and every remasked position whose token the re-decode changed: (position, old, new)."""
    changed = [(i, before[i], after[i]) for i in remasked_positions(windows) if after[i] != before[i]]
    return RemaskRecord(windows, changed)
