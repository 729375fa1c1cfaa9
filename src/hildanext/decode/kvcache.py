# A fixed-buffer K/V cache for block diffusion: one [batch, kv_heads, capacity, head_dim] buffer pair per layer,
# written at explicit positions (a block is re-run many times at the same positions, which Hugging Face's
# appending caches cannot do). Entry points: BlockKVCache(capacity); window(start, end) before each forward;
# update(key, value, layer_idx, ...) is what the attention layers call; clean_len tracks the exact prefix.
# static=True (the CUDA-graph path) writes at static_index and returns the whole buffers.
import torch
class BlockKVCache:
    """K/V buffers indexed by absolute position; a forward writes [start, end) and attends to [0, end)."""
    is_compileable = False
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.start = self.end = 0
        self.clean_len = 0
        self.static, self.static_index = False, None
    def window(self, start: int, end: int) -> None:
        if not 0 <= start < end <= self.capacity:
            raise ValueError(f"cache window [{start}, {end}) outside [0, {self.capacity})")
        self.start, self.end = start, end
    def buffers(self, layer_idx: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if layer_idx not in self.keys:
            shape = (like.shape[0], like.shape[1], self.capacity, like.shape[3])
            self.keys[layer_idx] = torch.zeros(shape, dtype=like.dtype, device=like.device)
            self.values[layer_idx] = torch.zeros(shape, dtype=like.dtype, device=like.device)
        return self.keys[layer_idx], self.values[layer_idx]
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if self.static:
            keys, values = self.buffers(layer_idx, key_states)
            keys.index_copy_(2, self.static_index, key_states)
            values.index_copy_(2, self.static_index, value_states)
            return keys, values
        if key_states.shape[2] != self.end - self.start:
            raise ValueError(f"layer {layer_idx}: {key_states.shape[2]} new keys for window [{self.start}, {self.end})")
        keys, values = self.buffers(layer_idx, key_states)
        keys[:, :, self.start:self.end] = key_states
        values[:, :, self.start:self.end] = value_states
        return keys[:, :, :self.end], values[:, :, :self.end]
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.end
