# Fixed-buffer K/V caches for block diffusion, written at explicit positions (a block is re-run many times at the
# same positions, which Hugging Face's appending caches cannot do); update(key, value, layer_idx, ...) is what the
# attention layers call. BlockKVCache(capacity): one sequence; window(start, end) before each forward; static=True
# (the CUDA-graph path) writes at static_index and returns the whole buffers. BatchKVCache(rows, capacity): one
# row per request of the batched decoder (decode/batch.py); begin(slots, columns, length, prefix) before each forward.
import torch
class BlockKVCache:
    """K/V buffers indexed by absolute position; a forward writes [start, end) and attends to [0, end)."""
    is_compileable = False
    def __init__(self, capacity: int):
        self.capacity = capacity
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.start = self.end = 0
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

class BatchKVCache:
    """Per layer [rows, kv_heads, capacity + 1, head_dim]: column 0 is scratch, position p lives in column p + 1."""
    is_compileable = False
    def __init__(self, rows: int, capacity: int = 0):
        self.rows, self.capacity = rows, capacity
        self.keys: dict[int, torch.Tensor] = {}
        self.values: dict[int, torch.Tensor] = {}
        self.slots = self.columns = self.prefix = self.length = None
    def grow(self, capacity: int) -> None:
        """Room for capacity positions per row (written K/V are kept)."""
        if capacity <= self.capacity:
            return
        for store in (self.keys, self.values):
            for layer, old in store.items():
                store[layer] = old.new_zeros(old.shape[0], old.shape[1], capacity + 1, old.shape[3])
                store[layer][:, :, : old.shape[2]] = old
        self.capacity = capacity
    def move(self, source: int, target: int) -> None:
        for store in (self.keys, self.values):
            for buffer in store.values():
                buffer[target] = buffer[source]
    def begin(self, slots: torch.Tensor, columns: torch.Tensor, length: int, prefix: int | None = None) -> None:
        """The next forward's slots, write columns [rows, width], attended columns; prefix n: slots are 0..n-1."""
        self.slots, self.columns, self.length, self.prefix = slots, columns, length, prefix
    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args, **kwargs):
        if layer_idx not in self.keys:
            shape = (self.rows, key_states.shape[1], self.capacity + 1, key_states.shape[3])
            self.keys[layer_idx] = key_states.new_zeros(shape)
            self.values[layer_idx] = value_states.new_zeros(shape)
        keys, values = self.keys[layer_idx], self.values[layer_idx]
        keys[self.slots[:, None], :, self.columns] = key_states.transpose(1, 2)
        values[self.slots[:, None], :, self.columns] = value_states.transpose(1, 2)
        if self.prefix is not None:
            return keys[: self.prefix, :, : self.length], values[: self.prefix, :, : self.length]
        return keys[self.slots, :, : self.length], values[self.slots, :, : self.length]
    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0
