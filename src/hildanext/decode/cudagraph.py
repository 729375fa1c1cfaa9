# Static-shape block forward, the decoder's CUDA-graph fast path (runtime.cuda_graphs): every block pass runs
# B query tokens (B + 1 with shift: the position before the block too; a block at 0 then runs windowed) against
# the whole fixed-capacity cache under a block-causal mask, so one graph, captured after a warm-up on a side
# stream, replays for every block with the inputs copied into its tensors. No Triton (Pascal can use it). On CPU
# the static forward runs eagerly (what the CPU tests compare). Entry point: StaticBlockForward(model, cache,
# block_size, cache_arg, shift).
import torch
from hildanext.model import attention_mask_4d
class StaticBlockForward:
    """Captured tensors (ids, positions, mask, write index) and, on CUDA, the graph and its output logits."""
    def __init__(self, model, cache, block_size: int, cache_arg: str, shift: bool = False):
        device, self.model, self.cache = model.device, model, cache
        self.block_size, self.cache_arg, self.shift = block_size, cache_arg, int(shift)
        self.width = block_size + self.shift
        self.ids = torch.zeros(1, self.width, dtype=torch.long, device=device)
        self.positions = torch.zeros(1, self.width, dtype=torch.long, device=device)
        self.keys = torch.arange(cache.capacity, device=device)
        self.mask = self.block_mask(self.shift * block_size).contiguous()
        cache.static_index = torch.zeros(self.width, dtype=torch.long, device=device)
        self.graph = self.logits = None
    def block_mask(self, start: int) -> torch.Tensor:
        queries = self.keys[start - self.shift : start + self.block_size]
        allowed = self.keys[None, :] // self.block_size <= queries[:, None] // self.block_size
        return attention_mask_4d(allowed, self.model.config._attn_implementation, self.model.dtype)
    def load(self, canvas: torch.Tensor, start: int) -> None:
        first, end = start - self.shift, start + self.block_size
        self.ids.copy_(canvas[None, first:end])
        self.positions.copy_(self.keys[None, first:end])
        self.cache.static_index.copy_(self.keys[first:end])
        self.mask.copy_(self.block_mask(start))
    def run_model(self) -> torch.Tensor:
        out = self.model(input_ids=self.ids, attention_mask=self.mask, position_ids=self.positions, use_cache=False,
                         logits_to_keep=self.width, **{self.cache_arg: self.cache})
        return out.logits[0]
    def capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self.run_model()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self.run_model()
    def __call__(self, canvas: torch.Tensor, start: int) -> torch.Tensor:
        """The block's logits (with shift: the rows of positions start - 1 .. end - 2); start >= 1 with shift."""
        self.load(canvas, start)
        self.cache.static = True
        try:
            if self.model.device.type != "cuda":
                return self.run_model()[: self.block_size]
            if self.graph is None:
                self.capture()
            self.graph.replay()
            return self.logits[: self.block_size].clone()
        finally:
            self.cache.static = False
