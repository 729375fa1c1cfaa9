# Decoder on a device: the demo model in S and Q modes (cached equals uncached, and the same ids as on CPU),
# then a Qwen3-0.6B-shaped random model in fp32 and bf16 (TPF is about 1 on random weights, so this measures
# the cost per forward): block-diffusion tokens/s with and without the block cache against the AR baseline.
# Usage: python benchmarks/decode_device.py [--model models/merged] [--out metrics/bench_decode_device.json]
import argparse, dataclasses, json
from pathlib import Path
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM
from hildanext.config import DecodeParams, RuntimeParams
from hildanext.decode.ar import ar_generate_ids
from hildanext.decode.decoder import generate_ids
from hildanext.decode.settings import DecodeSettings, SpecialIds, resolve_settings, special_ids_for
from hildanext.model import encode_prompt, load_decoder, read_model_info
from qwen3_shape import EOS_ID, FIRST_SPECIAL_ID, MASK_ID, QWEN3_06B, SPECIAL_IDS
def demo_checks(model_dir: Path, device: str) -> dict:
    out = {}
    for mode in ("S", "Q"):
        runs = {}
        for where, cache in ((device, True), (device, False), ("cpu", True)):
            model, tokenizer = load_decoder(model_dir, RuntimeParams(device=where))
            info = read_model_info(model_dir, tokenizer)
            settings = resolve_settings(DecodeParams(), info.block_size or 32, mode, max_new_tokens=96, cache=cache)
            prompt = encode_prompt(tokenizer, "Once upon a time, a little fox")
            result = generate_ids(model, prompt, settings, special_ids_for(info, tokenizer, model.config.vocab_size))
            runs[f"{where}_cache{int(cache)}"] = result
        ref = runs[f"{device}_cache1"]
        out[mode] = {"text": tokenizer.decode(ref.ids, skip_special_tokens=True), "tpf": ref.stats.tpf,
                     "edits": sum(len(r.edited) for r in ref.trace),
                     "cached_equals_uncached": ref.ids == runs[f"{device}_cache0"].ids,
                     "device_equals_cpu": ref.ids == runs["cpu_cache1"].ids}
    return out

def speed(device: str, dtype: torch.dtype, prompt_len: int = 100, new: int = 128) -> dict:
    torch.manual_seed(0)
    with torch.device(device):
        model = Qwen3ForCausalLM(Qwen3Config(**QWEN3_06B, attn_implementation="sdpa")).to(dtype).eval()
    prompt = torch.randint(0, FIRST_SPECIAL_ID, (prompt_len,), generator=torch.Generator().manual_seed(1)).tolist()
    special = SpecialIds(MASK_ID, EOS_ID, (), tuple(SPECIAL_IDS))
    rows = {}
    for name, cache in (("bd_cached", True), ("bd_uncached", False)):
        settings = DecodeSettings(0.5, 0.0, 32, new, 0, eos_early_stop=False, cache=cache)
        generate_ids(model, prompt, dataclasses.replace(settings, max_new_tokens=32), special)
        s = generate_ids(model, prompt, settings, special).stats
        rows[name] = {"tokens_per_s": s.tokens_per_s, "forwards": s.forwards,
                      "ms_per_forward": 1000 * s.seconds / max(s.forwards, 1), "tpf": s.tpf}
    ar = ar_generate_ids(model, prompt, DecodeSettings(0.5, 0.0, 1, new), SpecialIds(None, EOS_ID)).stats
    rows["ar_hf_generate"] = {"tokens_per_s": ar.tokens_per_s, "ms_per_token": 1000 * ar.seconds / max(ar.tokens, 1)}
    return rows

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/merged"))
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_decode_device.json"))
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = torch.cuda.get_device_name(0) if device == "cuda" else "cpu"
    report = {"device": name, "torch": torch.__version__, "demo": demo_checks(args.model, device)}
    print(json.dumps(report["demo"]), flush=True)
    for dtype in (torch.float32, torch.bfloat16):
        report[f"qwen3_06b_random_{str(dtype)[6:]}"] = speed(device, dtype)
        print(json.dumps(report[f"qwen3_06b_random_{str(dtype)[6:]}"]), flush=True)
    args.out.write_text(json.dumps(report, indent=1))

if __name__ == "__main__":
    main()
