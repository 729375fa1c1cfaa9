# LLaDA2.1 block-diffusion decoding (threshold unmasking plus token editing) over any Hugging Face causal-LM
# module, on an absolute block grid from position 0. Entry points: generate_ids(model, prompt_ids, ...) ->
# DecodeResult (ids, trace, stats, remask record); update_sets (the Gamma/Delta rule); propose (sampling).
# cache=True runs each pass on the current block over a BlockKVCache (cache=False recomputes the prefix);
# cuda_graphs=True uses cudagraph.StaticBlockForward; remask_pass=True adds hildanext.decode.remask's pass. observer
# sees {type: pass, record}, {type: remask, windows} and {type: block, ids so far} (with remask: one, at the end).
import inspect, math, time
from dataclasses import dataclass
import torch
from hildanext.config import RemaskParams
from hildanext.decode.cudagraph import StaticBlockForward
from hildanext.decode.kvcache import BlockKVCache
from hildanext.model import attention_mask_4d
from hildanext.decode.remask import RemaskRecord, remask_answer
@dataclass
class PassRecord:
    block: int
    step: int
    masks_left: int
    unmasked: list[tuple[int, int]]
    edited: list[tuple[int, int, int]]
    phase: str = "decode"

@dataclass
class DecodeStats:
    forwards: int
    tokens: int
    tpf: float
    seconds: float
    tokens_per_s: float
    cache_forwards: int = 0

@dataclass
class DecodeResult:
    ids: list[int]
    trace: list[PassRecord]
    stats: DecodeStats
    remask: RemaskRecord | None = None

@dataclass(frozen=True)
class DecodeSpec:
    mask_id: int
    stop_ids: tuple[int, ...]
    banned_ids: tuple[int, ...]
    block_size: int
    tau_mask: float
    tau_edit: float
    max_post_steps: int
    max_new_tokens: int
    temperature: float = 0.0
    top_k: int | None = None
    top_p: float | None = None
    eos_early_stop: bool = True
    seed: int = 0
    cache: bool = True
    cuda_graphs: bool = False
    remask: RemaskParams | None = None
    def check(self) -> None:
        if self.block_size < 1 or self.max_new_tokens < 1 or self.max_post_steps < 0 or self.temperature < 0:
            raise ValueError(f"need block_size >= 1, max_new_tokens >= 1, max_post_steps >= 0, temperature >= 0: {self}")
        if self.mask_id in self.stop_ids:
            raise ValueError(f"mask id {self.mask_id} is also a stop id")

def block_causal(q_start: int, q_end: int, block_size: int, device=None) -> torch.Tensor:
    """[q_end - q_start, q_end] bool: query i may see key j iff block(j) <= block(i)."""
    query_block = torch.arange(q_start, q_end, device=device) // block_size
    key_block = torch.arange(q_end, device=device) // block_size
    return key_block[None, :] <= query_block[:, None]

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

def propose(logits: torch.Tensor, banned: torch.Tensor, spec: DecodeSpec, gen: torch.Generator):
    """Token and confidence per row; banned ids get -inf first, so confidences are computed without them."""
    logits = without_banned(logits, banned)
    if spec.temperature == 0:
        conf, tokens = logits.softmax(-1).max(-1)
        return tokens, conf
    probs = filter_logits(logits / spec.temperature, spec.top_k, spec.top_p).softmax(-1)
    tokens = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    return tokens, probs.gather(-1, tokens[:, None]).squeeze(-1)

def update_sets(current, tokens, conf, editable, spec: DecodeSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """Gamma (masked, conf > tau_mask, at least the most confident) and Delta (changed token, conf > tau_edit)."""
    masked = editable & (current == spec.mask_id)
    unmask = masked & (conf > spec.tau_mask)
    if masked.any() and not unmask.any():
        unmask[conf.masked_fill(~masked, -1.0).argmax()] = True
    edit = editable & ~masked & (tokens != current) & (conf > spec.tau_edit)
    return unmask, edit

def pass_record(block: int, step: int, offset: int, before, after, unmask, edit, mask_id: int, phase: str = "decode") -> PassRecord:
    unmasked = [(int(i) + offset, int(after[i])) for i in unmask.nonzero().flatten()]
    edited = [(int(i) + offset, int(before[i]), int(after[i])) for i in edit.nonzero().flatten()]
    return PassRecord(block, step, int((after == mask_id).sum()), unmasked, edited, phase)

def cut_at_stop(ids: list[int], stop_ids) -> list[int]:
    for i, token in enumerate(ids):
        if token in stop_ids:
            return ids[: i + 1]
    return ids

class BlockDecoder:
    """One generation: the canvas, the optional cache, the RNG, the trace and the forward counts."""
    def __init__(self, model, prompt: torch.Tensor, spec: DecodeSpec, observer=None):
        self.model, self.spec, self.prompt_len, self.observer = model, spec, len(prompt), observer
        device = model.device
        length = math.ceil((len(prompt) + spec.max_new_tokens) / spec.block_size) * spec.block_size
        self.canvas = torch.full((length,), spec.mask_id, dtype=torch.long, device=device)
        self.canvas[: len(prompt)] = prompt.to(device)
        self.cache = BlockKVCache(length) if spec.cache else None
        self.cache_arg = cache_argument(model)
        self.static = StaticBlockForward(model, self.cache, spec.block_size, self.cache_arg) if spec.cuda_graphs and spec.cache else None
        self.banned = torch.tensor([i for i in spec.banned_ids if i < model.config.vocab_size], dtype=torch.long, device=device)
        self.stops = torch.tensor(spec.stop_ids, dtype=torch.long, device=device)
        self.gen = torch.Generator(device=device).manual_seed(spec.seed)
        self.trace: list[PassRecord] = []
        self.forwards = self.cache_forwards = 0
        self.remask: RemaskRecord | None = None
    def forward(self, q_start: int, q_end: int, keep: int) -> torch.Tensor:
        allowed = block_causal(q_start, q_end, self.spec.block_size, self.canvas.device)
        mask = attention_mask_4d(allowed, self.model.config._attn_implementation, self.model.dtype)
        positions = torch.arange(q_start, q_end, device=self.canvas.device)[None]
        extra = {}
        if self.cache is not None:
            self.cache.window(q_start, q_end)
            extra = {self.cache_arg: self.cache}
        out = self.model(input_ids=self.canvas[None, q_start:q_end], attention_mask=mask, position_ids=positions, use_cache=False, logits_to_keep=keep, **extra)
        return out.logits[0, -keep:]
    def extend_cache(self, start: int) -> None:
        if self.cache is not None and self.cache.clean_len < start:
            self.forward(self.cache.clean_len, start, 1)
            self.cache.clean_len = start
            self.cache_forwards += 1
    def block_logits(self, start: int, end: int) -> torch.Tensor:
        self.forwards += 1
        if self.static is not None:
            return self.static(self.canvas, start)
        return self.forward(start if self.cache is not None else 0, end, end - start)
    def decode_block(self, block: int) -> bool:
        """All passes of one block, in place; True when the last pass changed tokens (its cached K/V are stale)."""
        start, end = block * self.spec.block_size, (block + 1) * self.spec.block_size
        editable = torch.arange(start, end, device=self.canvas.device) >= self.prompt_len
        post, step, changed = 0, 0, True
        while True:
            has_masks = bool((editable & (self.canvas[start:end] == self.spec.mask_id)).any())
            post += not has_masks
            if post > self.spec.max_post_steps:
                return changed
            changed, step = self.apply_pass(block, step, start, end, self.block_logits(start, end), editable), step + 1
            if not has_masks and not changed:
                return False
    def apply_pass(self, block: int, step: int, start: int, end: int, logits, editable, phase: str = "decode") -> bool:
        """One pass over canvas[start:end]: propose, the Gamma/Delta sets, write, trace, notify; True if it changed tokens."""
        current = self.canvas[start:end].clone()
        tokens, conf = propose(logits, self.banned, self.spec, self.gen)
        unmask, edit = update_sets(current, tokens, conf, editable, self.spec)
        self.canvas[start:end] = torch.where(unmask | edit, tokens, current)
        self.trace.append(pass_record(block, step, start - self.prompt_len, current, self.canvas[start:end], unmask, edit, self.spec.mask_id, phase))
        self.notify({"type": "pass", "record": self.trace[-1], "forwards": self.forwards})
        return bool((unmask | edit).any())
    def notify(self, event: dict) -> None:
        if self.observer is not None:
            self.observer(event)
    def generated(self) -> torch.Tensor:
        return self.canvas[self.prompt_len : self.prompt_len + self.spec.max_new_tokens]
    def run(self) -> list[int]:
        size = self.spec.block_size
        for block in range(self.prompt_len // size, len(self.canvas) // size):
            self.extend_cache(block * size)
            stale = self.decode_block(block)
            if self.cache is not None:
                self.cache.clean_len = block * size if stale else (block + 1) * size
            done = self.canvas[self.prompt_len : min((block + 1) * size, self.prompt_len + self.spec.max_new_tokens)]
            if self.spec.remask is None:
                self.notify({"type": "block", "block": block, "ids": cut_at_stop(done.tolist(), set(self.spec.stop_ids))})
            if self.spec.eos_early_stop and bool(torch.isin(self.generated(), self.stops).any()):
                break
        ids = cut_at_stop(self.generated().tolist(), set(self.spec.stop_ids))
        return ids if self.spec.remask is None else self.remask_phase(ids)
    def remask_phase(self, ids: list[int]) -> list[int]:
        """The remask pass over the decoded answer, uncached (stale K/V dropped); then the one block event."""
        self.cache = self.static = None
        self.remask = remask_answer(self, ids, self.spec.remask, set(self.spec.stop_ids))
        ids = cut_at_stop(self.answer_tokens(len(ids)), set(self.spec.stop_ids))
        self.notify({"type": "block", "block": (self.prompt_len + max(len(ids), 1) - 1) // self.spec.block_size, "ids": ids})
        return ids
    def answer_tokens(self, length: int) -> list[int]:
        return self.canvas[self.prompt_len : self.prompt_len + length].tolist()
    def committed_confidence(self, length: int) -> torch.Tensor:
        """Probability of each committed answer token in one fresh block-causal forward over prompt + answer."""
        self.forwards += 1
        end = self.prompt_len + length
        logits = self.forward(0, end, length)
        return without_banned(logits, self.banned).softmax(-1).gather(-1, self.canvas[self.prompt_len : end, None]).squeeze(-1)
    def redecode(self, positions: list[int], length: int) -> None:
        """Mask the answer positions, then re-decode their blocks in order, each forward over prompt + answer so far."""
        where = [self.prompt_len + i for i in positions]
        self.canvas[where] = self.spec.mask_id
        for block in sorted({p // self.spec.block_size for p in where}):
            self.redecode_block(block, min((block + 1) * self.spec.block_size, self.prompt_len + length))
    def redecode_block(self, block: int, end: int) -> None:
        """Gamma-only passes (no edits, no post steps) over one block's masked answer positions in [start, end)."""
        start, step = block * self.spec.block_size, 0
        answer = torch.arange(start, end, device=self.canvas.device) >= self.prompt_len
        while bool((masked := answer & (self.canvas[start:end] == self.spec.mask_id)).any()):
            self.forwards += 1
            self.apply_pass(block, step, start, end, self.forward(0, end, end - start), masked, "remask")
            step += 1

def decode_stats(forwards: int, tokens: int, seconds: float, cache_forwards: int = 0) -> DecodeStats:
    return DecodeStats(forwards, tokens, tokens / max(forwards, 1), seconds, tokens / max(seconds, 1e-9), cache_forwards)

def generate_ids(model, prompt_ids, *, mask_id: int, eos_id: int, stop_ids=None, suppress_ids=None, block_size: int = 32, tau_mask: float, tau_edit: float, max_post_steps: int = 16, max_new_tokens: int, temperature: float = 0.0, top_k: int | None = None, top_p: float | None = None, eos_early_stop: bool = True, seed: int = 0, cache: bool = True, cuda_graphs: bool = False, remask_pass: bool = False, remask: RemaskParams | dict | None = None, observer=None) -> DecodeResult:
    """Decode max_new_tokens after prompt_ids; ids exclude the prompt and end after the first stop token."""
    stops = tuple(dict.fromkeys([eos_id, *(stop_ids or ())]))
    banned = tuple(sorted({mask_id, *(suppress_ids or ())}))
    windows = (remask if isinstance(remask, RemaskParams) else RemaskParams(**(remask or {}))) if remask_pass else None
    spec = DecodeSpec(mask_id, stops, banned, block_size, tau_mask, tau_edit, max_post_steps, max_new_tokens, temperature, top_k, top_p, eos_early_stop, seed, cache, cuda_graphs, windows)
    spec.check()
    decoder = BlockDecoder(model, torch.as_tensor(prompt_ids, dtype=torch.long).flatten(), spec, observer)
    started = time.perf_counter()
    with torch.inference_mode():
        ids = decoder.run()
    stats = decode_stats(decoder.forwards, len(ids), time.perf_counter() - started, decoder.cache_forwards)
    return DecodeResult(ids, decoder.trace, stats, decoder.remask)
