# Cost of the diffusion objective per training step (masking, T2T noising, block masks, supervised-only LM
# head, weighted losses) against a bare causal-LM forward+backward of the same model on the same tokens
# (the concatenated 2L input for BDLM, L for MDLM), in one run. Goal: overhead <= 15%.
# Usage: python benchmarks/train_step_overhead.py [--model models/init] [--seq 128] [--batch 8] [--repeats 5]
import argparse, platform, statistics
from pathlib import Path
import torch
from hildanext.config import ObjectiveParams, RuntimeParams
from hildanext.files import write_json_atomic
from timing import markdown_table, timed
from hildanext.model import load_model
from hildanext.train.objective import ObjectiveSetup, diffusion_loss, regular_token_ids
def bare_step(model, tokens: torch.Tensor) -> None:
    model(input_ids=tokens, labels=tokens, use_cache=False).loss.backward()
    model.zero_grad(set_to_none=True)

def diffusion_step(model, rows, setup: ObjectiveSetup) -> None:
    out = diffusion_loss(model, rows, setup, torch.Generator().manual_seed(0))
    out.loss.backward()
    model.zero_grad(set_to_none=True)

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/init"))
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_train_step.json"))
    args = parser.parse_args()
    model, tokenizer = load_model(args.model, RuntimeParams(device="cpu"))
    model.train()
    x0 = torch.randint(0, len(tokenizer) - 8, (args.batch, args.seq), generator=torch.Generator().manual_seed(1))
    doc_ids = torch.arange(args.seq).div(args.seq // 4, rounding_mode="floor").expand_as(x0).contiguous()
    setup = ObjectiveSetup(ObjectiveParams(embed_noise_std=0.0), tokenizer.mask_token_id, regular_token_ids(tokenizer),
                           None)
    rows = []
    for block_size, tokens in ((1, torch.cat([x0, x0], 1)), (32, torch.cat([x0, x0], 1)), (None, x0)):
        bare = timed(lambda t=tokens: bare_step(model, t), args.repeats, statistics.median)
        inputs = (model, (x0, doc_ids), setup.at(block_size))
        ours = timed(lambda a=inputs: diffusion_step(*a), args.repeats, statistics.median)
        rows.append({"block_size": block_size or "mdlm", "input_len": tokens.shape[1], "bare_s": bare,
                     "diffusion_s": ours, "overhead": ours / bare - 1})
    machine = f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    report = {"model": str(args.model), "seq": args.seq, "batch": args.batch, "machine": machine, "rows": rows}
    write_json_atomic(args.out, report)
    header = ["block", "input len", "bare fwd+bwd (s)", "diffusion step (s)", "overhead"]
    cells = [[r["block_size"], r["input_len"], f"{r['bare_s']:.4f}", f"{r['diffusion_s']:.4f}", f"{r['overhead']:+.0%}"]
             for r in rows]
    print(f"{args.model}, batch {args.batch}, seq {args.seq}, {machine}\n\n{markdown_table(header, cells)}")

if __name__ == "__main__":
    main()
