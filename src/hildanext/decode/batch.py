# Batched generation. A Session holds the rows decoding together; add(prepared, observer) queues a request and returns
# its key; step() advances the rows and returns those that ended as (key, Completion or the exception that ended
# the row); rows join between steps (continuous batching). DiffusionSession: every row is a BlockDecoder plan() on
# its own absolute grid, their Fill and PassAt requests answered by one batched forward each over a BatchKVCache.
# CUDA graphs (runtime.cuda_graphs) are captured per batch size. SerialSession: one row to its end per step.
# Entry points: Session, SerialSession, DiffusionSession, BatchGraphs, run_all.
import dataclasses, math, time
from collections import deque
import torch
from hildanext.decode.cudagraph import capture_graph
from hildanext.decode.decoder import BlockDecoder, Fill, PassAt, cache_argument, propose, stop_watch
from hildanext.decode.grid import grid_mask, shifted
from hildanext.decode.kvcache import BatchKVCache
from hildanext.model import attention_mask_4d
CAPACITY_STEP = 256
class Session:
    """Up to max_rows rows at a time; waiting rows join when a row ends."""
    def __init__(self, engine, max_rows: int):
        if max_rows < 1:
            raise ValueError(f"a session needs max_rows >= 1, got {max_rows}")
        self.engine, self.max_rows, self.waiting, self.next_key = engine, max_rows, deque(), 0
    def add(self, prepared, observer=None) -> int:
        self.next_key += 1
        self.waiting.append((self.next_key, prepared, observer))
        return self.next_key
    def running(self) -> int:
        return 0
    def __len__(self) -> int:
        return len(self.waiting) + self.running()
    def step(self) -> list[tuple[int, object]]:
        raise NotImplementedError

class SerialSession(Session):
    """One waiting row decoded to its end per step with engine.run."""
    def step(self) -> list[tuple[int, object]]:
        if not self.waiting:
            return []
        key, prepared, observer = self.waiting.popleft()
        try:
            return [(key, self.engine.run(prepared, observer))]
        except Exception as e:
            return [(key, e)]

def run_all(session: Session, prepared: list, observers=None) -> list:
    """Every request through the session; the first row's exception is raised once all rows have ended."""
    keys = [session.add(p, observers[i] if observers else None) for i, p in enumerate(prepared)]
    ended: dict[int, object] = {}
    while len(session):
        ended.update(session.step())
    if error := next((ended[k] for k in keys if isinstance(ended[k], BaseException)), None):
        raise error
    return [ended[k] for k in keys]

@dataclasses.dataclass
class Row:
    """One request in a DiffusionSession: its decoder and plan, the request it waits on, its cache slot."""
    key: int
    prepared: object
    decoder: BlockDecoder
    slot: int
    started: float
    plan: object = None
    request: object = None
    outcome: object = None
    def advance(self, reply=None) -> None:
        """Send the answer to the plan; the next request, or the ids (or the exception) that ended the row."""
        try:
            self.request = self.plan.send(reply)
        except StopIteration as done:
            self.request, self.outcome = None, done.value
        except Exception as e:
            self.request, self.outcome = None, e
    def batched(self, kind) -> bool:
        return self.outcome is None and isinstance(self.request, kind) and self.decoder.settings.cache
    def window(self) -> tuple[int, int]:
        """The queries of this row's next forward: [start, end), with shift the position before a unit too."""
        r = self.request
        return (r.start, r.end) if isinstance(r, Fill) else (max(r.start - self.decoder.settings.shift, 0), r.end)

class DiffusionSession(Session):
    """Block-diffusion rows decoding together; each yields the ids (and trace, stats) it yields alone."""
    def __init__(self, engine, max_rows: int):
        super().__init__(engine, max_rows)
        self.model, self.rows, self.steps = engine.model, [], 0
        self.cache, self.cache_arg = BatchKVCache(max_rows), cache_argument(engine.model)
        on = engine.params.runtime.cuda_graphs and engine.model.device.type == "cuda"
        self.graphs = BatchGraphs(self) if on else None
    def running(self) -> int:
        return len(self.rows)
    def step(self) -> list[tuple[int, object]]:
        with torch.inference_mode():
            while self.waiting and len(self.rows) < self.max_rows:
                self.join(*self.waiting.popleft())
            for kind in (Fill, PassAt):
                if rows := [r for r in self.rows if r.batched(kind)]:
                    self.answer(rows, kind)
            for row in [r for r in self.rows if r.outcome is None and not r.batched((Fill, PassAt))]:
                row.advance(row.decoder.execute(row.request))
            self.steps += 1
            return self.retire()
    def join(self, key: int, prepared, observer) -> None:
        request = prepared.request
        watch = stop_watch(self.engine.tokenizer, request.stop, observer) if request.stop else observer
        prompt = torch.as_tensor(prepared.prompt_ids, dtype=torch.long).flatten()
        row = Row(key, prepared, None, len(self.rows), time.perf_counter())
        try:
            row.decoder = BlockDecoder(self.model, prompt, prepared.settings, self.engine.special, watch, False)
        except Exception as e:
            row.outcome = e
        else:
            row.plan = row.decoder.plan()
            self.cache.grow(math.ceil(len(row.decoder.canvas) / CAPACITY_STEP) * CAPACITY_STEP)
            row.advance()
        self.rows.append(row)
    def answer(self, rows: list[Row], kind) -> None:
        """One batched forward for the rows' requests of one kind; each row is sent its block's logits."""
        windows = [r.window() for r in rows]
        try:
            logits = self.forward(rows, windows, kind)
        except Exception as e:
            for row in rows:
                row.request, row.outcome = None, e
            return
        if kind is Fill:
            for row in rows:
                row.advance()
            return
        pairs = enumerate(zip(rows, windows, strict=True))
        replies = [shifted(logits[i, : end - start], row.request.start, row.decoder.settings.shift,
                           bool(row.request.ahead)) for i, (row, (start, end)) in pairs]
        for row, reply in zip(rows, self.greedy_proposals(rows, replies), strict=True):
            row.advance(reply)
    def greedy_proposals(self, rows: list[Row], replies: list[torch.Tensor]) -> list:
        """Greedy rows' tokens and confidences, one propose per group of equal shape and confidence kind."""
        groups: dict[tuple, list[int]] = {}
        for i, row in enumerate(rows):
            if row.decoder.settings.temperature == 0:
                groups.setdefault((replies[i].shape, row.decoder.settings.confidence), []).append(i)
        for members in (m for m in groups.values() if len(m) > 1):
            first = rows[members[0]].decoder
            tokens, conf = propose(torch.stack([replies[i] for i in members]), first.banned, first.settings, first.gen)
            for k, i in enumerate(members):
                replies[i] = (tokens[k], conf[k])
        return replies
    def forward(self, rows: list[Row], windows: list[tuple[int, int]], kind) -> torch.Tensor:
        """Block passes of every row run at one fixed width (B + shift): on CUDA with graphs on, a replay."""
        width = max(end - start for start, end in windows)
        if kind is PassAt:
            width = max(r.decoder.settings.unit + r.decoder.settings.shift for r in rows)
        graph = kind is PassAt and self.graphs is not None and len(rows) == len(self.rows)
        length = self.cache.capacity + 1 if graph else max(end for _, end in windows) + 1
        inputs = self.inputs(rows, windows, width, length)
        return self.graphs(inputs) if graph else self.run_model(inputs, 1 if kind is Fill else width)
    def inputs(self, rows: list[Row], windows: list[tuple[int, int]], width: int, length: int) -> tuple:
        """ids, mask over length cache columns, position ids, write columns, slots; padding queries use column 0."""
        device = self.model.device
        columns = torch.zeros((len(rows), width), dtype=torch.long, device=device)
        ids = torch.full((len(rows), width), self.engine.special.eos_id, dtype=torch.long, device=device)
        for i, (row, (start, end)) in enumerate(zip(rows, windows, strict=True)):
            columns[i, : end - start] = torch.arange(start + 1, end + 1, device=device)
            ids[i, : end - start] = row.decoder.tokens(start, end)
        grid = [[r.decoder.settings.block_size, r.decoder.settings.unit, r.decoder.prompt_len, end]
                for r, (_, end) in zip(rows, windows, strict=True)]
        block, unit, prompt, ends = torch.tensor(grid, device=device).T[:, :, None]
        keys, positions, padding = torch.arange(length, device=device), (columns - 1).clamp(min=0), columns == 0
        allowed = grid_mask(positions, keys - 1, block, unit, prompt, ends) & (keys > 0) & ~padding[:, :, None]
        allowed |= padding[:, :, None] & (keys == 0)
        mask = attention_mask_4d(allowed, self.model.config._attn_implementation, self.model.dtype)
        return ids, mask, positions, columns, torch.tensor([r.slot for r in rows], device=device)
    def run_model(self, inputs: tuple[torch.Tensor, ...], keep: int) -> torch.Tensor:
        ids, mask, positions, columns, slots = inputs
        self.cache.begin(slots, columns, mask.shape[-1], len(slots) if len(slots) == len(self.rows) else None)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=False,
                         logits_to_keep=keep, **{self.cache_arg: self.cache})
        return out.logits
    def retire(self) -> list[tuple[int, object]]:
        """The rows that ended, as completions (or exceptions); the others move down to slots 0..n-1."""
        ended = [r for r in self.rows if r.outcome is not None]
        self.rows = [r for r in self.rows if r.outcome is None]
        for slot, row in enumerate(self.rows):
            if row.slot != slot:
                self.cache.move(row.slot, slot)
                row.slot = slot
        return [(r.key, self.completion(r)) for r in ended]
    def completion(self, row: Row) -> object:
        if isinstance(row.outcome, BaseException):
            return row.outcome
        return self.engine.completion(row.prepared, row.decoder.result(row.outcome, time.perf_counter() - row.started))

class BatchGraphs:
    """CUDA graphs of the batched block pass, one per (rows, width, capacity), captured on first use."""
    def __init__(self, session: DiffusionSession):
        self.session, self.captured = session, {}
    def __call__(self, inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
        key = (*inputs[0].shape, self.session.cache.capacity)
        if key not in self.captured:
            self.captured = {k: v for k, v in self.captured.items() if k[2] == key[2]}
            self.captured[key] = self.capture(inputs)
        graph, static, logits = self.captured[key]
        for target, value in zip(static, inputs, strict=True):
            target.copy_(value)
        graph.replay()
        return logits.clone()
    def capture(self, inputs: tuple[torch.Tensor, ...]):
        """Capture the forward on copies of the inputs (capture_graph: warm-up writes equal the replay's)."""
        static = tuple(x.clone() for x in inputs)
        graph, logits = capture_graph(lambda: self.session.run_model(static, static[0].shape[1]))
        return graph, static, logits
