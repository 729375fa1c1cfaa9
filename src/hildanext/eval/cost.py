# The cost of one block-diffusion forward against one AR decode step on the same machine: the median time of a
# cached forward of `queries` tokens (the block, one more with token shift) after a context (a BlockKVCache,
# all-true mask, as a cached decode pass runs) and of one cached AR step of the base (a DynamicCache cropped by
# one after each step), both after a warm-up; their ratio is the TPF a block-diffusion decoder needs to match AR
# speed. Entry points: median_ms, block_forward_ms, ar_step_ms, forward_cost.
import statistics, time
import torch
from transformers import DynamicCache
from hildanext.decode.decoder import cache_argument
from hildanext.decode.kvcache import BlockKVCache
from hildanext.model import attention_mask_4d
def median_ms(fn, repeats: int) -> float:
    """Median wall time of fn in milliseconds over `repeats` calls after one warm-up call (CUDA synchronised)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)

def filler_ids(model, length: int) -> torch.Tensor:
    return torch.arange(length, device=model.device)[None] % model.config.vocab_size

@torch.inference_mode()
def block_forward_ms(model, context: int, queries: int, repeats: int) -> float:
    """One cached forward of `queries` query tokens at [context, context + queries) over the cached context."""
    ids, end, cache = filler_ids(model, context + queries), context + queries, BlockKVCache(context + queries)
    impl, arg = model.config._attn_implementation, cache_argument(model)
    def run(start: int, stop: int):
        allowed = torch.ones(stop - start, stop, dtype=torch.bool, device=model.device)
        cache.window(start, stop)
        model(input_ids=ids[:, start:stop], attention_mask=attention_mask_4d(allowed, impl, model.dtype),
              position_ids=torch.arange(start, stop, device=model.device)[None], use_cache=False,
              logits_to_keep=stop - start, **{arg: cache})
    run(0, context)
    return median_ms(lambda: run(context, end), repeats)

@torch.inference_mode()
def ar_step_ms(model, context: int, repeats: int) -> float:
    """One cached AR decode step (one new token, last logits only) after a cached context of `context` tokens."""
    ids, cache, arg = filler_ids(model, context + 1), DynamicCache(config=model.config), cache_argument(model)
    model(input_ids=ids[:, :context], use_cache=True, **{arg: cache})
    def step():
        model(input_ids=ids[:, context:], use_cache=True, logits_to_keep=1, **{arg: cache})
        cache.crop(-1)
    return median_ms(step, repeats)

def forward_cost(model, ar_model, context: int, queries: int, repeats: int) -> dict:
    """block_forward_ms, ar_step_ms and parity_tpf = their ratio (the TPF at which both decode equally fast)."""
    block, step = block_forward_ms(model, context, queries, repeats), ar_step_ms(ar_model, context, repeats)
    return {"block_forward_ms": block, "ar_step_ms": step, "parity_tpf": block / max(step, 1e-9),
            "context_tokens": context, "query_tokens": queries, "repeats": repeats}
