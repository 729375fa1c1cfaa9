# CUDA graphs for the decoder (runtime.cuda_graphs): capture_graph(run) is the one capture helper (two warm-up runs
# on a side stream, then the capture), used here and by decode/batch.py. StaticBlockForward is the single-row fast
# path: every pass runs one unit's width (unit + 1 with shift: the position before it too) against the whole
# fixed-capacity cache under decode/grid.py's mask, so one graph replays for every unit with its inputs copied in.
# No Triton (Pascal can use it); on CPU the static forward runs eagerly (what the CPU tests compare).
# Entry points: capture_graph, StaticBlockForward(model, cache, settings, cache_arg, prompt_len).
import torch
from hildanext.decode.grid import grid_mask, shifted
from hildanext.model import attention_mask_4d
def capture_graph(run):
    """Warm run() up twice on a side stream, then capture it; returns (graph, the captured run's output)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(2):
            run()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = run()
    return graph, output

class StaticBlockForward:
    """Captured tensors (ids, positions, mask, write index) and, on CUDA, the graph and its output logits."""
    def __init__(self, model, cache, settings, cache_arg: str, prompt_len: int):
        device, self.model, self.cache, self.settings = model.device, model, cache, settings
        self.cache_arg, self.shift, self.prompt_len = cache_arg, int(settings.shift), prompt_len
        self.width = settings.unit + self.shift
        self.ids = torch.zeros(1, self.width, dtype=torch.long, device=device)
        self.positions = torch.zeros(1, self.width, dtype=torch.long, device=device)
        self.keys = torch.arange(cache.capacity, device=device)
        self.mask = self.unit_mask(self.shift * settings.unit, cache.capacity).contiguous()
        cache.static_index = torch.zeros(self.width, dtype=torch.long, device=device)
        self.graph = self.logits = None
    def unit_mask(self, start: int, end: int) -> torch.Tensor:
        s = self.settings
        queries = self.keys[start - self.shift : start + s.unit]
        allowed = grid_mask(queries, self.keys, s.block_size, s.unit, self.prompt_len, end)
        return attention_mask_4d(allowed, self.model.config._attn_implementation, self.model.dtype)
    def load(self, canvas: torch.Tensor, start: int, end: int) -> None:
        first, stop = start - self.shift, start + self.settings.unit
        self.ids.copy_(canvas[None, first:stop])
        self.positions.copy_(self.keys[None, first:stop])
        self.cache.static_index.copy_(self.keys[first:stop])
        self.mask.copy_(self.unit_mask(start, end))
    def run_model(self) -> torch.Tensor:
        out = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=self.positions, use_cache=False,
                         logits_to_keep=self.width, **{self.cache_arg: self.cache})
        return out.logits[0]
    def __call__(self, canvas: torch.Tensor, at) -> torch.Tensor:
        """Logits predicting canvas[at.start:at.end + at.ahead] (with shift at.start >= 1)."""
        self.load(canvas, at.start, at.end)
        self.cache.static = True
        try:
            if self.model.device.type != "cuda":
                logits = self.run_model()
            else:
                if self.graph is None:
                    self.graph, self.logits = capture_graph(self.run_model)
                self.graph.replay()
                logits = self.logits.clone()
        finally:
            self.cache.static = False
        rows = at.end - at.start + self.shift
        return shifted(logits[:rows], at.start, bool(self.shift), bool(at.ahead))
