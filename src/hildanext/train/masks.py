# Attention masks (True = may attend) for packed rows with per-token document ids, shape [L] or [B, L].
# Entry points: block_index (row- or document-aligned block ids), bdlm_attention_mask over concat(x_t, x_0)
# (LLaDA2.0 eq. 3 / BD3-LM block_diff_mask, AND same document), mdlm_attention_mask (same document,
# bidirectional), causal_doc_mask (causal AND same document), and for the token shift has_predecessor and
# shift_source (the input index whose hidden state predicts each position). Doc id -1 (padding) is a document.
import torch
ALIGNS = ("row", "document")
def block_index(doc_ids: torch.Tensor, block_size: int, align: str = "row") -> torch.Tensor:
    """Block id of every position; ids never decrease along a row, so an earlier block has a smaller id."""
    if block_size < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if align not in ALIGNS:
        raise ValueError(f"align must be one of {ALIGNS}, got {align!r}")
    length = doc_ids.shape[-1]
    positions = torch.arange(length, device=doc_ids.device).expand(doc_ids.shape)
    if align == "row":
        return (positions // block_size).contiguous()
    doc_start = torch.ones(doc_ids.shape, dtype=torch.bool, device=doc_ids.device)
    doc_start[..., 1:] = doc_ids[..., 1:] != doc_ids[..., :-1]
    start_of_doc = torch.cummax(torch.where(doc_start, positions, 0), dim=-1).values
    block_start = (positions - start_of_doc) % block_size == 0
    return block_start.long().cumsum(-1) - 1

def same_document(doc_ids: torch.Tensor) -> torch.Tensor:
    return doc_ids[..., :, None] == doc_ids[..., None, :]

def bdlm_attention_mask(doc_ids: torch.Tensor, block_size: int, align: str = "row") -> torch.Tensor:
    """[2L, 2L] (or [B, 2L, 2L]) mask for the input concat(x_t, x_0); rows and columns are noisy then clean."""
    blocks = block_index(doc_ids, block_size, align)
    query_block, key_block = blocks[..., :, None], blocks[..., None, :]
    same = same_document(doc_ids)
    noisy_to_noisy = (query_block == key_block) & same
    noisy_to_clean = (query_block > key_block) & same
    clean_to_clean = (query_block >= key_block) & same
    clean_to_noisy = torch.zeros_like(same)
    noisy_rows = torch.cat([noisy_to_noisy, noisy_to_clean], dim=-1)
    clean_rows = torch.cat([clean_to_noisy, clean_to_clean], dim=-1)
    return torch.cat([noisy_rows, clean_rows], dim=-2)

def mdlm_attention_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """[L, L] (or [B, L, L]): bidirectional within each document."""
    return same_document(doc_ids)

def causal_doc_mask(doc_ids: torch.Tensor) -> torch.Tensor:
    """[L, L] (or [B, L, L]): causal and within the same document."""
    length = doc_ids.shape[-1]
    causal = torch.ones(length, length, dtype=torch.bool, device=doc_ids.device).tril()
    return causal & same_document(doc_ids)

def has_predecessor(doc_ids: torch.Tensor) -> torch.Tensor:
    """True where position j >= 1 is a real token whose predecessor j-1 is in the same document."""
    found = torch.zeros(doc_ids.shape, dtype=torch.bool, device=doc_ids.device)
    found[..., 1:] = (doc_ids[..., 1:] == doc_ids[..., :-1]) & (doc_ids[..., 1:] >= 0)
    return found

def shift_source(doc_ids: torch.Tensor, block_size: int | None, align: str = "row") -> torch.Tensor:
    """Input index whose hidden state predicts x_t position j under the token shift (j-1, or L+j-1 across blocks)."""
    length = doc_ids.shape[-1]
    previous = (torch.arange(length, device=doc_ids.device) - 1).clamp(min=0).expand(doc_ids.shape).contiguous()
    if block_size is None:
        return previous
    blocks = block_index(doc_ids, block_size, align)
    return torch.where(blocks == torch.gather(blocks, -1, previous), previous, previous + length)
