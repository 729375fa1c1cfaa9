# Peak RSS of one SFT/distill training step (sft_loss + backward) on CPU with the extra passes off, on with one
# backward at the end (before issue 27), and on with a backward per pass (ObjectiveSetup.backward): a Qwen3-0.6B
# shape cut to --layers layers (random weights, vocab 151936), one row of --seq tokens, each config in a fresh
# process. Usage: python benchmarks/extras_memory.py [--layers 4] [--seq 256] [--out metrics/bench_extras_memory.json]
import argparse, json, resource, subprocess, sys, time
from pathlib import Path
CONFIGS = {"off": (False, False), "on_one_backward": (True, False), "on_backward_per_pass": (True, True)}
def step(name: str, layers: int, seq: int) -> dict:
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM
    from hildanext.config import ObjectiveParams, SftParams
    from hildanext.train.objective import ObjectiveSetup, sft_loss
    sys.path.insert(0, str(Path(__file__).parent))
    from qwen3_shape import FIRST_SPECIAL_ID, MASK_ID, QWEN3_06B
    extras, early = CONFIGS[name]
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(**(QWEN3_06B | {"num_hidden_layers": layers}))).train()
    x0 = torch.randint(0, FIRST_SPECIAL_ID, (1, seq), generator=torch.Generator().manual_seed(0))
    supervised = torch.arange(seq)[None] >= seq // 8
    s = SftParams(complementary=extras, mtf=extras, cap_weight=2.0 if extras else 0.0)
    setup = ObjectiveSetup(ObjectiveParams(shift=True), MASK_ID, torch.arange(FIRST_SPECIAL_ID), 32,
                           cap_weight=s.cap_weight, backward=(lambda term: term.backward()) if early else None)
    before, started = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
    out = sft_loss(model, (x0, torch.zeros_like(x0), supervised), setup, s, torch.Generator().manual_seed(1))
    if out.loss.requires_grad:
        out.loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"config": name, "peak_rss_mb": peak / 1024, "before_step_rss_mb": before / 1024,
            "step_s": time.perf_counter() - started, "loss": out.loss.item()}

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--one", choices=list(CONFIGS))
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_extras_memory.json"))
    args = parser.parse_args()
    if args.one:
        print(json.dumps(step(args.one, args.layers, args.seq)))
        return
    rows = []
    for name in CONFIGS:
        cmd = [sys.executable, __file__, "--one", name, "--layers", str(args.layers), "--seq", str(args.seq)]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1]))
        print(rows[-1], flush=True)
    from hildanext.files import write_json_atomic
    write_json_atomic(args.out, {"label": "CPU peak RSS, one step, random weights", "layers": args.layers,
                                 "seq": args.seq, "rows": rows})

if __name__ == "__main__":
    main()
