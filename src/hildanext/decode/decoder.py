# LLaDA2.1 block-diffusion decoding (threshold unmasking plus token editing) with the decode policies (stop in
# block, fallback, carry_next, confidence kind, sub-block units) over any Hugging Face causal-LM, on an absolute grid
# from 0. Entry points: generate_ids(model, prompt_ids, settings, special, observer) -> DecodeResult; BlockDecoder
# .plan() (a generator of Fill / PassAt / Uncached requests that run() or decode/batch.py answers), update_sets,
# propose, tokens_per_forward. The observer sees {type: pass, record, forwards, refreshes}, {type: remask}, {type:
# block, ids}; True to a block event ends decoding there (stop_watch: stop strings; cut_at_stop_strings).
import inspect, math, time
from dataclasses import dataclass
import torch
from hildanext.decode.cudagraph import StaticBlockForward
from hildanext.decode.grid import block_causal, shifted
from hildanext.decode.kvcache import BlockKVCache
from hildanext.decode.remask import RemaskRecord, remask_record, remasked_positions, scored_length, select_windows
from hildanext.decode.settings import DecodeSettings, SpecialIds
from hildanext.model import attention_mask_4d
@dataclass
class PassRecord:
    block: int
    step: int
    masks_left: int
    unmasked: list[tuple[int, int]]
    edited: list[tuple[int, int, int]]
    phase: str = "decode"

@dataclass(frozen=True)
class PassAt:
    """One pass over canvas[start:end] of a unit: its step, phase (decode, remask, carry), ahead: also predict end."""
    block: int
    step: int
    start: int
    end: int
    phase: str = "decode"
    ahead: int = 0

@dataclass(frozen=True)
class Fill:
    """Make the cached K/V of canvas[start:end] exact (the prompt's prefill or a stale block's refresh)."""
    start: int
    end: int

@dataclass(frozen=True)
class Uncached:
    """Logits predicting canvas[start:end] from one uncached block-causal forward over canvas[0:end]."""
    start: int
    end: int

@dataclass
class DecodeStats:
    """forwards: decode passes; cache_forwards: stale-block refreshes; TPF = tokens / both (prefill excluded)."""
    forwards: int
    tokens: int
    tpf: float
    seconds: float
    tokens_per_s: float
    cache_forwards: int = 0
    prefill_forwards: int = 0

@dataclass
class DecodeResult:
    ids: list[int]
    trace: list[PassRecord]
    stats: DecodeStats
    remask: RemaskRecord | None = None

def cache_argument(model) -> str:
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"

def filter_logits(logits: torch.Tensor, top_k: int | None, top_p: float | None) -> torch.Tensor:
    if top_k is not None and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -math.inf)
    if top_p is not None and top_p < 1:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        sorted_probs = sorted_logits.softmax(-1)
        drop_sorted = sorted_probs.cumsum(-1) - sorted_probs > top_p
        logits = logits.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), -math.inf)
    return logits

def without_banned(logits: torch.Tensor, banned: torch.Tensor) -> torch.Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32)).index_fill(-1, banned, -math.inf)

def confidence_of(probs: torch.Tensor, tokens: torch.Tensor, kind: str) -> torch.Tensor:
    """prob: p(token); margin: p(token) minus the best other p; entropy: exp(-H(p)), 1/k for k even choices."""
    chosen = probs.gather(-1, tokens[..., None]).squeeze(-1)
    if kind == "prob":
        return chosen
    if kind == "entropy":
        return torch.exp(-torch.special.entr(probs).sum(-1))
    best_other = probs.scatter(-1, tokens[..., None], -1.0).max(-1).values
    return chosen - best_other

def propose(logits: torch.Tensor, banned: torch.Tensor, s: DecodeSettings, gen: torch.Generator):
    """Token and confidence (s.confidence) per row; banned ids get -inf first, so confidences exclude them."""
    logits = without_banned(logits, banned)
    if s.temperature == 0:
        probs = logits.softmax(-1)
        return (tokens := probs.argmax(-1)), confidence_of(probs, tokens, s.confidence)
    probs = filter_logits(logits / s.temperature, s.top_k, s.top_p).softmax(-1)
    tokens = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return tokens, confidence_of(probs, tokens, s.confidence)

def update_sets(current, tokens, conf, editable, s: DecodeSettings, mask_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Gamma (masked, conf > tau_mask, else the fallback's one mask) and Delta (changed token, conf > tau_edit)."""
    masked = editable & (current == mask_id)
    unmask = masked & (conf > s.tau_mask)
    if masked.any() and not unmask.any():
        pick = masked.nonzero()[0, 0] if s.fallback == "leftmost" else conf.masked_fill(~masked, -1.0).argmax()
        unmask[pick] = True
    edit = editable & ~masked & (tokens != current) & (conf > s.tau_edit)
    return unmask, edit

def cut_at_stop(ids: list[int], stop_ids) -> list[int]:
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[: i + 1]
    return ids

def cut_at_stop_strings(text: str, stops) -> tuple[str, bool]:
    """The text before the earliest stop string, and whether one was found."""
    hits = [text.find(s) for s in stops if s and s in text]
    return (text[: min(hits)], True) if hits else (text, False)

def stop_watch(tokenizer, stops, observer=None):
    """The observer, answering True once a finished block's text holds a stop string (finished blocks never change)."""
    def watch(event: dict) -> bool:
        if observer is not None:
            observer(event)
        text = tokenizer.decode(event["ids"], skip_special_tokens=True) if event["type"] == "block" else ""
        return cut_at_stop_strings(text, stops)[1]
    return watch

def check_special(special: SpecialIds) -> None:
    if special.mask_id is None:
        raise ValueError("no mask id: block-diffusion decoding needs a folder with <|mask|>")
    if special.mask_id in special.stops:
        raise ValueError(f"mask id {special.mask_id} is also a stop id")

class BlockDecoder:
    """One generation: the canvas, the optional own cache, the RNG, the trace and the forward counts."""
    def __init__(self, model, prompt: torch.Tensor, s: DecodeSettings, special: SpecialIds, observer=None,
                 own_cache: bool = True):
        check_special(special)
        if s.shift and len(prompt) == 0:
            raise ValueError("token shift needs a non-empty prompt: position 0 has no position before it to predict it")
        self.model, self.settings, self.prompt_len, self.observer = model, s, len(prompt), observer
        self.mask_id, self.stop_set, device = special.mask_id, set(special.stops), model.device
        length = math.ceil((len(prompt) + s.max_new_tokens) / s.block_size) * s.block_size
        self.canvas = torch.full((length,), special.mask_id, dtype=torch.long, device=device)
        self.canvas[: len(prompt)] = prompt.to(device)
        self.answer_end = len(prompt) + s.max_new_tokens if s.stop_in_block else length
        self.cache = BlockKVCache(length) if s.cache and own_cache else None
        self.cache_arg = cache_argument(model)
        graphs = s.cuda_graphs and self.cache is not None
        self.static = StaticBlockForward(model, self.cache, s, self.cache_arg, len(prompt)) if graphs else None
        banned = [i for i in sorted({special.mask_id, *special.banned_ids}) if i < model.config.vocab_size]
        self.banned = torch.tensor(banned, dtype=torch.long, device=device)
        self.stops = torch.tensor(special.stops, dtype=torch.long, device=device)
        self.gen = torch.Generator(device=device).manual_seed(s.seed)
        self.trace: list[PassRecord] = []
        self.forwards = self.cache_forwards = self.prefill_forwards = self.clean_len = 0
        self.remask: RemaskRecord | None = None
        self.ahead = self.carry = None
    def forward(self, q_start: int, q_end: int, keep: int) -> torch.Tensor:
        s, device = self.settings, self.canvas.device
        allowed = block_causal(q_start, q_end, s.block_size, device, unit=s.unit, prompt_len=self.prompt_len)
        mask = attention_mask_4d(allowed, self.model.config._attn_implementation, self.model.dtype)
        positions = torch.arange(q_start, q_end, device=self.canvas.device)[None]
        extra = {}
        if self.cache is not None:
            self.cache.window(q_start, q_end)
            extra = {self.cache_arg: self.cache}
        out = self.model(input_ids=self.canvas[None, q_start:q_end], attention_mask=mask, position_ids=positions,
                         use_cache=False, logits_to_keep=keep, **extra)
        return out.logits[0, -keep:]
    def logits_for(self, q_start: int, start: int, end: int, ahead: int = 0) -> torch.Tensor:
        """Logits predicting canvas[start:end + ahead] from one forward over [q_start, end) (shift: from p - 1)."""
        first = max(start - self.settings.shift, 0)
        return shifted(self.forward(min(q_start, first), end, end - first), start, self.settings.shift, bool(ahead))
    def execute(self, request) -> torch.Tensor | None:
        """Answer one request of plan() with this decoder's own forwards (and cache, when it has one)."""
        if isinstance(request, Fill):
            return self.forward(request.start, request.end, 1)
        if isinstance(request, Uncached):
            return self.logits_for(0, request.start, request.end)
        if self.static is not None and (request.start > 0 or not self.settings.shift):
            return self.static(self.canvas, request)
        q_start = request.start if self.cache is not None else 0
        return self.logits_for(q_start, request.start, request.end, request.ahead)
    def tokens(self, start: int, end: int) -> torch.Tensor:
        return self.canvas[start:end]
    def stop_cut(self, start: int, end: int) -> int | None:
        """With stop_in_block: the first answer stop token in [start, end) with no mask before it, else None."""
        if not self.settings.stop_in_block:
            return None
        span = self.canvas[start:end]
        answer = torch.arange(start, end, device=span.device) >= self.prompt_len
        stops, masks = answer & torch.isin(span, self.stops), answer & (span == self.mask_id)
        if not stops.any():
            return None
        first = int(stops.nonzero()[0, 0])
        return None if masks[:first].any() else start + first
    def decode_block(self, unit: int):
        """All passes of one decode unit (block or sub-block), in place; True when its last pass changed tokens."""
        s, start = self.settings, unit * self.settings.unit
        end, post, changed = min(start + s.unit, self.answer_end), 0, True
        step = int(self.commit_carry(unit, start, end))
        while True:
            cut = self.stop_cut(start, end)
            end = end if cut is None else cut + 1
            positions = torch.arange(start, end, device=self.canvas.device)
            editable = (positions >= self.prompt_len) & (positions != (end if cut is None else cut))
            has_masks = bool((editable & (self.canvas[start:end] == self.mask_id)).any())
            post += not has_masks
            if post > s.max_post_steps:
                return changed
            ahead = int(s.carry_next and s.shift and end == start + s.unit and end < self.answer_end)
            at = PassAt(unit, step, start, end, ahead=ahead)
            self.forwards += 1
            changed = self.apply_pass(at, (yield at), editable)
            step += 1
            if not has_masks and not changed:
                self.carry = self.ahead
                return False
    def commit_carry(self, unit: int, start: int, end: int) -> bool:
        """Commit the carried proposal for the unit's first position if it passes tau_mask (no forward)."""
        carry, self.carry = self.carry, None
        if carry is None or start < self.prompt_len or not carry[1] > self.settings.tau_mask:
            return False
        current, unmask = self.canvas[start:end].clone(), torch.arange(end - start, device=self.canvas.device) == 0
        self.canvas[start] = carry[0]
        self.record(PassAt(unit, 0, start, end, "carry"), current, unmask, torch.zeros_like(unmask))
        return True
    def apply_pass(self, at: PassAt, logits, editable) -> bool:
        """One pass (logits, or a batch's greedy (tokens, conf)): propose, Gamma/Delta, write, trace, notify."""
        current = self.canvas[at.start : at.end].clone()
        tokens, conf = logits if isinstance(logits, tuple) else propose(logits, self.banned, self.settings, self.gen)
        size = at.end - at.start
        self.ahead = (int(tokens[size]), float(conf[size])) if at.ahead else None
        tokens, conf = tokens[:size], conf[:size]
        unmask, edit = update_sets(current, tokens, conf, editable, self.settings, self.mask_id)
        self.canvas[at.start : at.end] = torch.where(unmask | edit, tokens, current)
        self.record(at, current, unmask, edit)
        return bool((unmask | edit).any())
    def record(self, at: PassAt, before, unmask, edit) -> None:
        """Trace the pass that turned before into canvas[at.start:at.end] (answer-relative) and tell the observer."""
        offset, after = at.start - self.prompt_len, self.canvas[at.start : at.end]
        unmasked = [(int(i) + offset, int(after[i])) for i in unmask.nonzero().flatten()]
        edited = [(int(i) + offset, int(before[i]), int(after[i])) for i in edit.nonzero().flatten()]
        self.trace.append(PassRecord(at.block, at.step, int((after == self.mask_id).sum()), unmasked, edited, at.phase))
        self.notify({"type": "pass", "record": self.trace[-1], "forwards": self.forwards,
                     "refreshes": self.cache_forwards})
    def notify(self, event: dict) -> bool:
        """Tell the observer; its True after a block event stops decoding there (a stop string was reached)."""
        return self.observer is not None and bool(self.observer(event))
    def generated(self) -> torch.Tensor:
        return self.canvas[self.prompt_len : self.prompt_len + self.settings.max_new_tokens]
    def plan(self):
        """The whole decoding as a generator: yields Fill, PassAt and Uncached requests, is sent their logits."""
        s, size = self.settings, self.settings.unit
        for unit in range(self.prompt_len // size, math.ceil(self.answer_end / size)):
            if s.cache and self.clean_len < unit * size:
                self.prefill_forwards += unit * size <= self.prompt_len
                self.cache_forwards += unit * size > self.prompt_len
                yield Fill(self.clean_len, unit * size)
                self.clean_len = unit * size
            stale = yield from self.decode_block(unit)
            self.clean_len = unit * size if stale and s.cache else (unit + 1) * size
            done = self.canvas[self.prompt_len : min((unit + 1) * size, self.prompt_len + s.max_new_tokens)]
            if s.remask is None and self.notify({"type": "block", "block": unit,
                                                  "ids": cut_at_stop(done.tolist(), self.stop_set)}):
                break
            if (s.eos_early_stop or s.stop_in_block) and bool(torch.isin(self.generated(), self.stops).any()):
                break
        ids = cut_at_stop(self.generated().tolist(), self.stop_set)
        return ids if s.remask is None else (yield from self.remask_phase(ids))
    def run(self) -> list[int]:
        return drive(self.plan(), self.execute)
    def result(self, ids: list[int], seconds: float) -> DecodeResult:
        stats = decode_stats(self.forwards, len(ids), seconds, self.cache_forwards, self.prefill_forwards)
        return DecodeResult(ids, self.trace, stats, self.remask)
    def remask_phase(self, ids: list[int]):
        """The remask pass over the decoded answer, uncached (stale K/V dropped); then the one block event."""
        self.cache = self.static = None
        self.remask = yield from self.remask_answer(ids)
        ids = cut_at_stop(self.answer_tokens(len(ids)), self.stop_set)
        last_unit = (self.prompt_len + max(len(ids), 1) - 1) // self.settings.unit
        self.notify({"type": "block", "block": last_unit, "ids": ids})
        return ids
    def remask_answer(self, ids: list[int]) -> RemaskRecord:
        """Score the answer (its trailing stop excluded), pick windows (remask.select_windows), re-decode them."""
        length = scored_length(ids, self.stop_set)
        if length == 0:
            return RemaskRecord([], [])
        conf = (yield from self.committed_confidence(len(ids)))[:length].tolist()
        windows = select_windows(ids[:length], conf, self.settings.tau_mask, self.settings.remask)
        positions = remasked_positions(windows)
        self.notify({"type": "remask", "windows": windows, "forwards": self.forwards, "refreshes": self.cache_forwards})
        yield from self.redecode(positions, len(ids))
        return remask_record(windows, ids, self.answer_tokens(len(ids)))
    def answer_tokens(self, length: int) -> list[int]:
        return self.canvas[self.prompt_len : self.prompt_len + length].tolist()
    def committed_confidence(self, length: int):
        """Probability of each committed answer token in one fresh block-causal forward over prompt + answer."""
        self.forwards += 1
        end = self.prompt_len + length
        probs = without_banned((yield Uncached(self.prompt_len, end)), self.banned).softmax(-1)
        return probs.gather(-1, self.canvas[self.prompt_len : end, None]).squeeze(-1)
    def redecode(self, positions: list[int], length: int):
        """Mask the answer positions, then re-decode their units in order, each forward over prompt + answer so far."""
        where, size = [self.prompt_len + i for i in positions], self.settings.unit
        self.canvas[where] = self.mask_id
        for unit in sorted({p // size for p in where}):
            yield from self.redecode_block(unit, min((unit + 1) * size, self.prompt_len + length))
    def redecode_block(self, unit: int, end: int):
        """Gamma-only passes (no edits, no post steps) over one unit's masked answer positions in [start, end)."""
        start, step = unit * self.settings.unit, 0
        answer = torch.arange(start, end, device=self.canvas.device) >= self.prompt_len
        while bool((masked := answer & (self.canvas[start:end] == self.mask_id)).any()):
            self.forwards += 1
            self.apply_pass(PassAt(unit, step, start, end, "remask"), (yield Uncached(start, end)), masked)
            step += 1

def drive(plan, execute):
    """Run a plan() generator to its end, answering each request with execute(request); returns its value."""
    reply = None
    while True:
        try:
            request = plan.send(reply)
        except StopIteration as done:
            return done.value
        reply = execute(request)

def tokens_per_forward(tokens: int, forwards: int) -> float:
    """The one TPF (dllm protocol): tokens kept up to the stop over every forward after the prompt's prefill."""
    return tokens / max(forwards, 1)

def decode_stats(forwards: int, tokens: int, seconds: float, cache_forwards: int = 0,
                 prefill_forwards: int = 0) -> DecodeStats:
    """TPF counts every forward after the prompt's prefill: decode passes and stale-block refreshes."""
    return DecodeStats(forwards, tokens, tokens_per_forward(tokens, forwards + cache_forwards), seconds,
                       tokens / max(seconds, 1e-9), cache_forwards, prefill_forwards)

def generate_ids(model, prompt_ids, settings: DecodeSettings, special: SpecialIds, observer=None) -> DecodeResult:
    """Decode settings.max_new_tokens after prompt_ids; ids exclude the prompt and end after the first stop token."""
    decoder = BlockDecoder(model, torch.as_tensor(prompt_ids, dtype=torch.long).flatten(), settings, special, observer)
    started = time.perf_counter()
    with torch.inference_mode():
        ids = decoder.run()
    return decoder.result(ids, time.perf_counter() - started)
