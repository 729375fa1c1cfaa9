# Training-memory estimate for the gtx1080 profile on a Qwen3-0.6B-shaped model (random weights, same shapes
# as config.json of Qwen/Qwen3-0.6B), computed on CPU from real tensors: parameter, gradient and optimizer
# bytes of the profile's trainable set, plus the autograd-saved activations of one WSD micro-batch (checkpoint
# inputs + one layer recomputed in backward) measured at short sequences, extrapolated linearly to seq_len 1024,
# plus (issue 27) the frozen fp32 AR teacher of logit KD and its KD logits. Usage: python
# benchmarks/gtx1080_memory.py [--seqs 64 128] [--target 1024] [--out metrics/bench_gtx1080_memory.json]
import argparse
from pathlib import Path
import numpy as np
import torch
from transformers import Qwen3Config, Qwen3ForCausalLM
from hildanext.config import ObjectiveParams, RuntimeParams
from hildanext.files import write_json_atomic
from hildanext.train.objective import ObjectiveSetup, diffusion_loss
from hildanext.train.profiles import resolve_profile
from qwen3_shape import FIRST_SPECIAL_ID, MASK_ID, QWEN3_06B
GIB = 2**30
def saved_activation_bytes(model, seq_len: int) -> int:
    storages, total = set(), 0
    def pack(tensor):
        nonlocal total
        key = tensor.untyped_storage().data_ptr()
        if key not in storages:
            storages.add(key)
            total += tensor.untyped_storage().nbytes()
        return tensor
    x0 = torch.randint(0, FIRST_SPECIAL_ID, (1, seq_len), generator=torch.Generator().manual_seed(0))
    setup = ObjectiveSetup(ObjectiveParams(embed_noise_std=0.0), MASK_ID, torch.arange(FIRST_SPECIAL_ID), 32)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = diffusion_loss(model, (x0, torch.zeros_like(x0)), setup, torch.Generator().manual_seed(1))
    out.loss.backward()
    model.zero_grad(set_to_none=True)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved_weights = weights & storages
    return total - sum(p.untyped_storage().nbytes() for p in model.parameters()
                       if p.untyped_storage().data_ptr() in saved_weights)

def state_bytes(model, profile) -> dict:
    params = sum(p.numel() for p in model.parameters())
    embedding = model.get_input_embeddings().weight.numel()
    optimizer_per_param = 2 if profile.optimizer == "adamw8bit" else 8
    return {"params": params * 4, "grads": params * 4, "optimizer": params * optimizer_per_param,
            "embedding_params": embedding}

def teacher_bytes(model, target: int) -> dict:
    """Logit KD's extra: fp32 teacher weights, and teacher logits + saved probabilities + student softmax."""
    vocab = model.config.vocab_size
    return {"teacher_weights": sum(p.numel() for p in model.parameters()) * 4, "kd_logits": 3 * target * vocab * 4}

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seqs", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--target", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_gtx1080_memory.json"))
    args = parser.parse_args()
    profile = resolve_profile(RuntimeParams(profile="gtx1080"))
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(Qwen3Config(**QWEN3_06B)).train()
    full = {seq: saved_activation_bytes(model, seq) for seq in args.seqs}
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    kept = {seq: saved_activation_bytes(model, seq) for seq in args.seqs}
    layers = model.config.num_hidden_layers
    measured = {seq: kept[seq] + full[seq] / layers for seq in args.seqs} if profile.grad_ckpt else full
    slope, intercept = np.polyfit(list(measured), list(measured.values()), 1)
    activations = slope * args.target + intercept
    states = state_bytes(model, profile)
    total = states["params"] + states["grads"] + states["optimizer"] + activations
    teacher = teacher_bytes(model, args.target)
    report = {"label": "estimate (CPU, real tensors; no GPU)", "profile": profile.__dict__,
              "measured_activation_bytes": measured, "no_ckpt_bytes": full, "activation_bytes_at_target": activations,
              **states, "total_bytes": total, "cap_bytes": 0.85 * 8 * GIB, **teacher,
              "total_with_teacher_bytes": total + sum(teacher.values())}
    write_json_atomic(args.out, report)
    gib = {k: states[k] / GIB for k in ("params", "grads", "optimizer")}
    print(f"gtx1080 profile, seq_len {args.target}, batch 1 (estimate): params {gib['params']:.2f} GiB, "
          f"grads {gib['grads']:.2f} GiB, optimizer {gib['optimizer']:.2f} GiB, "
          f"activations {activations / GIB:.2f} GiB -> total {total / GIB:.2f} GiB vs cap {0.85 * 8:.2f} GiB")

if __name__ == "__main__":
    main()
