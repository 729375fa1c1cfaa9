# Decode speed in one run: our block-diffusion decoder vs the AR baseline (HF generate) on the same hardware,
# the decoder's time per forward against a bare model forward of the same shape (B query tokens over the same
# cached prefix), cost per generated token at 128 vs 1024 new tokens (cached vs uncached), and on CUDA the
# eager vs CUDA-graph block forward. --shape qwen3-0.6b uses random weights of that shape (TPF about 1).
# Usage: python benchmarks/decode_speed.py [--model models/sft] [--ar-model models/demo-base]
#        [--shape demo|qwen3-0.6b]
import argparse, json, platform, statistics, time
from pathlib import Path
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM
from hildanext.config import RuntimeParams
from hildanext.decode.ar import ar_generate_ids
from hildanext.decode.decoder import block_causal, cache_argument, generate_ids
from hildanext.decode.kvcache import BlockKVCache
from hildanext.decode.settings import DecodeSettings, SpecialIds
from hildanext.model import attention_mask_4d, load_decoder, load_model
from qwen3_shape import EOS_ID, MASK_ID, QWEN3_06B, SPECIAL_IDS
def sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()

def bare_forward_ms(model, prefix: int, block: int, repeats: int = 20) -> float:
    cache, arg = BlockKVCache(prefix + block), cache_argument(model)
    ids = torch.randint(0, min(model.config.vocab_size, 1000) - 50, (1, prefix + block), device=model.device)
    attn, device = model.config._attn_implementation, model.device
    with torch.inference_mode():
        cache.window(0, prefix)
        prefill = attention_mask_4d(block_causal(0, prefix, block, device), attn, model.dtype)
        model(input_ids=ids[:, :prefix], attention_mask=prefill, position_ids=torch.arange(prefix, device=device)[None],
              use_cache=False, **{arg: cache})
        mask = attention_mask_4d(block_causal(prefix, prefix + block, block, device), attn, model.dtype)
        times = []
        for _ in range(repeats):
            sync(model.device)
            start = time.perf_counter()
            cache.window(prefix, prefix + block)
            positions = torch.arange(prefix, prefix + block, device=device)[None]
            model(input_ids=ids[:, prefix:], attention_mask=mask, position_ids=positions, use_cache=False,
                  logits_to_keep=block, **{arg: cache})
            sync(model.device)
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)

def decode_row(model, prompt, ids: dict, new: int, **flags) -> dict:
    common = {"block_size": 32, "tau_mask": 0.5, "tau_edit": 0.0, "max_post_steps": 0, "eos_early_stop": False}
    special = SpecialIds(ids["mask"], ids["eos"], (), tuple(ids["suppress"]))
    generate_ids(model, prompt, DecodeSettings(max_new_tokens=32, **common, **flags), special)
    sync(model.device)
    s = generate_ids(model, prompt, DecodeSettings(max_new_tokens=new, **common, **flags), special).stats
    return {"tokens_per_s": s.tokens_per_s, "forwards_per_s": s.forwards / s.seconds,
            "ms_per_forward": 1000 * s.seconds / s.forwards, "ms_per_token": 1000 * s.seconds / max(s.tokens, 1),
            "tpf": s.tpf}

def load(args):
    if args.shape == "qwen3-0.6b":
        torch.manual_seed(0)
        with torch.device(args.device):
            model = Qwen3ForCausalLM(Qwen3Config(**QWEN3_06B, attn_implementation="sdpa")).eval()
        return model, model, {"mask": MASK_ID, "eos": EOS_ID, "suppress": SPECIAL_IDS}
    model, tokenizer = load_decoder(args.model, RuntimeParams(device=args.device))
    ar_model, _ = load_model(args.ar_model, RuntimeParams(device=args.device))
    spare = set(range(len(tokenizer), model.config.vocab_size))
    special = sorted(set(tokenizer.all_special_ids) | set(tokenizer.added_tokens_decoder) | spare)
    return model, ar_model, {"mask": tokenizer.mask_token_id, "eos": tokenizer.eos_token_id, "suppress": special}

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/sft"))
    parser.add_argument("--ar-model", type=Path, default=Path("models/demo-base"))
    parser.add_argument("--shape", choices=["demo", "qwen3-0.6b"], default="demo")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_decode_speed.json"))
    args = parser.parse_args()
    model, ar_model, ids = load(args)
    prompt = torch.randint(0, min(ids["eos"], 1000), (40,), generator=torch.Generator().manual_seed(0)).tolist()
    rows = {f"bd_cached_{n}": decode_row(model, prompt, ids, n) for n in (128, 1024)}
    rows |= {f"bd_uncached_{n}": decode_row(model, prompt, ids, n, cache=False) for n in (128, 1024)}
    if model.device.type == "cuda":
        rows |= {f"bd_cuda_graphs_{n}": decode_row(model, prompt, ids, n, cuda_graphs=True) for n in (128, 1024)}
    ar_special = SpecialIds(None, ids["eos"], (), tuple(ids["suppress"]))
    ar = ar_generate_ids(ar_model, prompt, DecodeSettings(0.5, 0.0, 1, 128), ar_special).stats
    rows["ar_128"] = {"tokens_per_s": ar.tokens_per_s, "ms_per_token": 1000 * ar.seconds / max(ar.tokens, 1)}
    bare = bare_forward_ms(model, len(prompt) + 64, 32)
    cpu = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    device = torch.cuda.get_device_name(0) if model.device.type == "cuda" else cpu
    growth = {k: rows[f"{k}_1024"]["ms_per_token"] / rows[f"{k}_128"]["ms_per_token"]
              for k in ("bd_cached", "bd_uncached")}
    report = {"device": device, "torch": torch.__version__, "shape": args.shape, "rows": rows,
              "bare_forward_ms_b32": bare, "overhead_per_forward": rows["bd_cached_128"]["ms_per_forward"] / bare,
              "cost_per_token_1024_vs_128": growth}
    print(json.dumps(report, indent=1))
    args.out.write_text(json.dumps(report, indent=1))

if __name__ == "__main__":
    main()
