# The batching server's startup memory check: serve.max_batch rows of the full context (serve.max_context, or
# the model's max_position_embeddings when 0) of K/V cache plus the weights must fit the profile's memory cap
# (runtime.max_vram_pct of the device: CUDA total memory, or physical RAM on CPU), else a one-line ParamsError.
# Entry points: kv_cache_bytes (pure), batch_bytes, device_memory, check_batch_fits.
import os
import torch
from hildanext.config import ParamsError, Params
from hildanext.train.profiles import resolve_profile
def kv_cache_bytes(layers: int, kv_heads: int, head_dim: int, dtype_bytes: int, positions: int) -> int:
    """K and V of every layer for `positions` positions (rows x context)."""
    return layers * 2 * kv_heads * head_dim * dtype_bytes * positions

def batch_bytes(model, rows: int, context: int) -> int:
    """The K/V cache of rows x context positions in the model's dtype, plus its weights and buffers."""
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    cache = kv_cache_bytes(config.num_hidden_layers, kv_heads, head_dim, model.dtype.itemsize, rows * context)
    return cache + sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])

def device_memory(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")

def check_batch_fits(params: Params, model) -> None:
    """ParamsError unless serve.max_batch x the context fits runtime.max_vram_pct of the device's memory."""
    rows, context = params.serve.max_batch, params.serve.max_context or model.config.max_position_embeddings
    pct = resolve_profile(params.runtime).max_vram_pct
    needed, cap = batch_bytes(model, rows, context), int(pct * device_memory(model.device))
    if needed > cap:
        raise ParamsError(f"serve.max_batch: {rows} rows x a context of {context} tokens need {needed:,} bytes (K/V "
                          f"cache plus weights), over the memory cap of {cap:,} bytes ({pct:.0%} of {model.device}); "
                          "lower serve.max_batch or serve.max_context")
