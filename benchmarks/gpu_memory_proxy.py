# GPU proxy for the gtx1080 memory goal: the profile's exact training settings (micro-batch 1, accumulation 8,
# gradient checkpointing, fp32, memory-efficient SDPA, 8-bit AdamW, embedding frozen but the mask row; or LoRA)
# on a Qwen3-0.6B-shaped model at seq_len 1024, with the memory fraction set to 6.8 GiB of whatever CUDA card
# runs it; records torch.cuda.max_memory_allocated per variant and phase (BDLM block 32 = 2L input, MDLM = L).
# Without CUDA it dry-runs a tiny config on CPU. Usage: python benchmarks/gpu_memory_proxy.py [--variants ...]
# [--out F]
import argparse, dataclasses, json, subprocess, sys, tempfile, time
from pathlib import Path
import torch
from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM
from hildanext.train.adapters import attach_lora, load_base
from hildanext.config import LoraParams, ObjectiveParams, RuntimeParams
from hildanext.train.objective import ObjectiveSetup, diffusion_loss
from hildanext.train.profiles import compute_context, make_optimizer, prepare_model, resolve_profile
from hildanext.train.loop import LoopSpec, optimizer_step
from qwen3_shape import FIRST_SPECIAL_ID, MASK_ID, QWEN3_06B
TINY = QWEN3_06B | {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
                    "num_key_value_heads": 2, "head_dim": 16}
GIB, CAP, SEQ = 2**30, 0.85 * 8 * 2**30, 1024
DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")
FULL = {"adapter": "none", "optimizer": "adamw", "train_embeddings": "all"}
VARIANTS = {"gtx1080": {}, "full_mask_row": {"adapter": "none"}, "qlora": {"quantize": "4bit"}, "adamw_fp32": FULL,
            "adamw_fp32_uncapped": FULL | {"uncapped": True}}
TOKENIZER_DIR = "models/init"
def build(variant: dict):
    knobs = {k: v for k, v in variant.items() if k in ("optimizer", "train_embeddings", "adapter")}
    profile = resolve_profile(RuntimeParams(profile="gtx1080", **knobs))
    uncapped = variant.get("uncapped") or DEVICE.type == "cpu"
    fraction = 1.0 if uncapped else CAP / torch.cuda.get_device_properties(0).total_memory
    profile = dataclasses.replace(profile, max_vram_pct=fraction)
    shape = QWEN3_06B if DEVICE.type == "cuda" else TINY
    with DEVICE:
        model = Qwen3ForCausalLM(Qwen3Config(**shape, attn_implementation="sdpa")).train()
    lora = LoraParams(quantize=variant.get("quantize", "none"))
    if lora.quantize == "4bit":
        model = quantized_copy(model, lora)
    prepare_model(model, profile)
    if profile.adapter == "lora":
        model = attach_lora(model, lora, MASK_ID)
    return model, profile, make_optimizer(model, profile, 1e-4, (0.9, 0.95), 0.01, MASK_ID)

def quantized_copy(model, lora: LoraParams):
    folder = Path(tempfile.mkdtemp())
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(TOKENIZER_DIR).save_pretrained(folder)
    del model
    torch.cuda.empty_cache()
    return load_base(folder, RuntimeParams(), lora)[0].train()

def peaks() -> dict:
    if DEVICE.type != "cuda":
        return {"max_allocated_gib": None}
    torch.cuda.synchronize()
    return {"max_allocated_gib": torch.cuda.max_memory_allocated() / GIB,
            "max_reserved_gib": torch.cuda.max_memory_reserved() / GIB}

def measure(name: str) -> dict:
    variant = VARIANTS[name]
    model, profile, optimizer = build(variant)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    setup = ObjectiveSetup(ObjectiveParams(), MASK_ID, torch.arange(FIRST_SPECIAL_ID), None)
    out = {"variant": name, "profile": dataclasses.asdict(profile), "trainable": trainable}
    for phase, block in (("bdlm_b32", 32), ("mdlm", None)):
        if DEVICE.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        def loss_at(net, batch, step, micro, block=block):
            gen = torch.Generator().manual_seed(step * 131 + micro)
            with compute_context(profile, DEVICE):
                return diffusion_loss(net, (batch, torch.zeros_like(batch)), setup.at(block), gen, noise=True)
        spec = LoopSpec(2, lambda s, phase=phase, block=block: (phase, block or SEQ), lambda s: 1e-4, loss_at,
                        lambda m, s: {}, grad_accum=8)
        batches = [torch.randint(0, FIRST_SPECIAL_ID, (1, SEQ), generator=torch.Generator().manual_seed(i))
                   for i in range(8)]
        start = time.perf_counter()
        try:
            for step in range(2):
                optimizer_step(model, optimizer, spec, step, batches)
            out[phase] = peaks() | {"seconds_per_step": (time.perf_counter() - start) / 2}
        except torch.OutOfMemoryError as e:
            out[phase] = peaks() | {"oom": str(e).splitlines()[0][:200]}
            optimizer.zero_grad(set_to_none=True)
    return out

def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--one", default=None)
    parser.add_argument("--out", default="gpu_memory.json")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    cuda = DEVICE.type == "cuda"
    total = torch.cuda.get_device_properties(0).total_memory / GIB if cuda else None
    device = {"gpu": torch.cuda.get_device_name(0) if cuda else "cpu (tiny dry run)", "total_gib": total,
              "cap_gib": CAP / GIB, "torch": torch.__version__, "arch_list": torch.cuda.get_arch_list()}
    results = [device]
    for name in args.variants:
        run = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
        failed = {"variant": name, "error": run.stderr[-2000:]}
        results.append(json.loads(run.stdout.strip().splitlines()[-1]) if run.returncode == 0 else failed)
        print(json.dumps(results[-1]), flush=True)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)

if __name__ == "__main__":
    main()
