# Cost of hildanext's explicit 4D attention masks against the plain causal forward (the same-run baseline):
# sdpa + bool mask and eager + additive float mask, on a Qwen3 model folder (default models/init) or a
# random model of the demo shape. Usage: python benchmarks/masked_forward.py [--model DIR] [--seq 128 512]
# [--repeats 5] [--out metrics/bench_masked_forward.json]; prints a markdown table for docs/PERFORMANCE.md.
import argparse, platform
from pathlib import Path
import torch
import transformers
from hildanext.config import RuntimeParams
from hildanext.files import write_json_atomic
from timing import markdown_table, timed
from hildanext.model import causal_allowed, load_model, masked_logits
@torch.no_grad()
def measure(model_dir: Path, seq: int, repeats: int) -> dict:
    row = {"seq": seq}
    for impl in ("sdpa", "eager"):
        model, _ = load_model(model_dir, RuntimeParams(device="cpu", attn_implementation=impl))
        x = torch.randint(0, model.config.vocab_size - 1, (1, seq), generator=torch.Generator().manual_seed(0))
        if impl == "sdpa":
            row["plain_causal_s"] = timed(lambda m=model, x=x: m(input_ids=x, use_cache=False), repeats)
        row[f"{impl}_mask_s"] = timed(lambda m=model, x=x: masked_logits(m, x, causal_allowed(seq)), repeats)
    return row | {"sdpa_ratio": row["sdpa_mask_s"] / row["plain_causal_s"],
                  "eager_ratio": row["eager_mask_s"] / row["plain_causal_s"]}

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/init"))
    parser.add_argument("--seq", type=int, nargs="+", default=[128, 512, 2048])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_masked_forward.json"))
    args = parser.parse_args()
    rows = [measure(args.model, seq, args.repeats) for seq in args.seq]
    versions = f"torch {torch.__version__}, transformers {transformers.__version__}"
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, {versions}"
    write_json_atomic(args.out, {"model": str(args.model), "machine": machine, "rows": rows})
    header = ["seq", "plain causal (s)", "sdpa+bool (s)", "eager+float (s)", "sdpa/plain", "eager/plain"]
    cells = [[r["seq"], f"{r['plain_causal_s']:.4f}", f"{r['sdpa_mask_s']:.4f}", f"{r['eager_mask_s']:.4f}",
              f"{r['sdpa_ratio']:.2f}", f"{r['eager_ratio']:.2f}"] for r in rows]
    print(f"{args.model} on {machine}\n\n{markdown_table(header, cells)}")

if __name__ == "__main__":
    main()
