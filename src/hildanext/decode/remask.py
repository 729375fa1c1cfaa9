# The optional remask pass (issue 12, decode.remask, [INFERRED]; DESIGN.md open choice 25): after the answer
# is decoded, score every committed answer token, slide windows over the answer, remask the least confident
# tokens of each window (bounded by min_ratio and target_ratio, the most confident kept safe by
# percentile_safety) and re-decode them. Entry points: select_windows (a pure function of tokens,
# confidences and RemaskParams), window_spans, remask_answer(decoder, ids, params, stop_ids) -> RemaskRecord.
import math
from dataclasses import dataclass
from fractions import Fraction
from hildanext.config import RemaskParams
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
    """Per window: candidates below the safety cap; the quota's lowest-confidence ones, earlier windows' picks counted."""
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

def remask_answer(decoder, ids: list[int], params: RemaskParams, stop_ids) -> RemaskRecord:
    """Score the answer (its trailing stop token excluded), pick per window, re-decode; the decoder's canvas changes."""
    length = len(ids) - int(bool(ids) and ids[-1] in stop_ids)
    if length == 0:
        return RemaskRecord([], [])
    conf = decoder.committed_confidence(len(ids))[:length].tolist()
    windows = select_windows(ids[:length], conf, decoder.spec.tau_mask, params)
    positions = sorted(i for w in windows for i, _, _ in w.remasked)
    decoder.notify({"type": "remask", "windows": windows, "forwards": decoder.forwards})
    decoder.redecode(positions, len(ids))
    after = decoder.answer_tokens(len(ids))
    return RemaskRecord(windows, [(i, ids[i], after[i]) for i in positions if after[i] != ids[i]])
