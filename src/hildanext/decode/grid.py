# The decoder's one attention rule and one token-shift helper, used by the single-row, batched and CUDA-graph paths.
# A query sees a key iff the key lies before the end of the query's unit (its trained block while that block is all
# prompt, else its decode unit: the sub-block or the block) and before the forward's end (a block cut at its stop).
# Entry points: visible_end, grid_mask (any queries and keys, per-row tensors welcome), block_causal(q_start, q_end,
# block_size, ...) -> [Q, q_end] bool, shifted(logits, start, shift, ahead) (rows predicting canvas[start:end + ahead]).
import torch
def visible_end(positions: torch.Tensor, block_size, unit=None, prompt_len=0) -> torch.Tensor:
    """Per position, the end of what it sees: its block's end while the block is all prompt, else its unit's end."""
    unit = block_size if unit is None else unit
    block_end = (positions // block_size + 1) * block_size
    return torch.where(block_end <= prompt_len, block_end, (positions // unit + 1) * unit)

def grid_mask(queries: torch.Tensor, keys: torch.Tensor, block_size, unit=None, prompt_len=0, end=None) -> torch.Tensor:
    """[..., Q, K] bool: query q sees key k iff k < visible_end(q) and k < end (sizes: ints or [rows, 1] tensors)."""
    limit = visible_end(queries, block_size, unit, prompt_len)
    if end is not None:
        limit = torch.minimum(limit, torch.as_tensor(end, device=limit.device))
    return keys[..., None, :] < limit[..., :, None]

def block_causal(q_start: int, q_end: int, block_size: int, device=None, *, unit=None, prompt_len=0) -> torch.Tensor:
    """[q_end - q_start, q_end] bool: queries q_start..q_end - 1 against keys 0..q_end - 1."""
    queries, keys = torch.arange(q_start, q_end, device=device), torch.arange(q_end, device=device)
    return grid_mask(queries, keys, block_size, unit, prompt_len)

def shifted(logits: torch.Tensor, start: int, shift: bool, ahead: bool = False) -> torch.Tensor:
    """Rows predicting canvas[start:end + ahead] from the logits of queries [start - shift, end) (row 0 zeros)."""
    if not shift:
        return logits
    rows = logits if ahead else logits[:-1]
    return rows if start > 0 else torch.cat([rows.new_zeros(1, rows.shape[-1]), rows])
