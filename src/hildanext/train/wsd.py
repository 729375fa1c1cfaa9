# LLaDA2.0 Warmup-Stable-Decay conversion: the block-size schedule (warmup 1 -> 4 -> 32 -> 64, stable MDLM at
# the full sequence with the x0 half dropped, decay down to the inference block size), the LR schedule, eval
# at the phase's and the inference block size, and the wsd stage (`hildanext convert-wsd`): models/init +
# data/tokenized -> models/wsd/ckpt-* and models/wsd/final, resuming only when the params hash matches.
# Entry points: Phase, wsd_phases, lr_at, evaluate, wsd_stage.
import math, sys
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import mlflow
import torch
from hildanext.train import masks
from hildanext.train import objective
from hildanext.train import profiles
from hildanext.train import loop as train
from hildanext.config import Params, ParamsError, WsdParams, as_dict
from hildanext.data.loader import PackedShards, ShardLoader
from hildanext.files import sha256_file, write_json_atomic
from hildanext.model import check_model_folder, model_meta, save_model
from hildanext.train.objective import diffusion_loss, regular_token_ids
from hildanext.train.adapters import merged_model
from hildanext.train.profiles import check_device, check_precision, compute_context, make_optimizer, make_scaler, micro_steps, resolve_profile
from hildanext.train.loop import Checkpoints, LoopSpec, checkpoint_run_id, distributed, params_hash, profile_part, restore, start_state, train_loop
@dataclass(frozen=True)
class Phase:
    name: str
    block_size: int
    mdlm: bool
    start: int
    steps: int

def per_phase(steps: tuple[int, ...], count: int, key: str) -> list[int]:
    if len(steps) not in (1, count):
        raise ParamsError(f"params.yaml: wsd.{key}: give 1 or {count} values, got {len(steps)}")
    return list(steps) * count if len(steps) == 1 else list(steps)

def decay_sizes(p: WsdParams, seq_len: int) -> list[int]:
    if p.decay_blocks:
        return list(p.decay_blocks)
    sizes, size = [], seq_len // 2
    while size > p.decay_to:
        sizes.append(size)
        size //= 2
    return sizes + [p.decay_to]

def wsd_phases(p: WsdParams, seq_len: int) -> list[Phase]:
    warmup = [b or seq_len for b in p.warmup_blocks]
    decay = decay_sizes(p, seq_len)
    for size in warmup + decay:
        if seq_len % size:
            raise ParamsError(f"params.yaml: wsd: block size {size} does not divide tokenize.seq_len {seq_len}")
    plan = [(f"warmup-{b}", b, b == seq_len, n) for b, n in zip(warmup, per_phase(p.warmup_steps, len(warmup), "warmup_steps"), strict=True)]
    plan += [(f"stable-{seq_len}", seq_len, True, p.stable_steps)] if p.stable_steps else []
    plan += [(f"decay-{b}", b, False, n) for b, n in zip(decay, per_phase(p.decay_steps, len(decay), "decay_steps"), strict=True)]
    phases, start = [], 0
    for name, block_size, mdlm, steps in plan:
        phases.append(Phase(name, block_size, mdlm, start, steps))
        start += steps
    return phases

def phase_of(phases: list[Phase], step: int) -> Phase:
    return next((ph for ph in phases if ph.start <= step < ph.start + ph.steps), phases[-1])

def lr_at(step: int, p: WsdParams, total: int) -> float:
    if step < p.lr_warmup_steps:
        return p.lr * (step + 1) / p.lr_warmup_steps
    progress = (step - p.lr_warmup_steps) / max(1, total - p.lr_warmup_steps)
    shape = {"none": 1.0, "linear": 1 - progress, "cosine": 0.5 * (1 + math.cos(math.pi * progress))}[p.lr_decay]
    return p.lr * (p.min_lr_ratio + (1 - p.min_lr_ratio) * shape) if p.lr_decay != "none" else p.lr

@torch.no_grad()
def evaluate(model, shards: PackedShards, block_size: int | None, params: Params, mask_id: int, regular_ids, fixed_t=None) -> dict:
    model.eval()
    gen = torch.Generator().manual_seed(params.wsd.eval_seed)
    rows, size = min(len(shards), params.wsd.eval_rows), micro_steps(params.wsd.batch_size, resolve_profile(params.runtime))[0]
    outs = [diffusion_loss(model, *shards[i : min(i + size, rows)], block_size, params.objective, mask_id, regular_ids, gen, params.wsd.block_align, fixed_t=fixed_t) for i in range(0, rows, size)]
    model.train()
    masked = sum(o.masked for o in outs) or 1
    return {"loss_m2t": sum(o.loss_m2t * o.tokens for o in outs) / sum(o.tokens for o in outs), "loss_t2t": sum(o.loss_t2t for o in outs) / len(outs), "acc_m2t": sum(o.acc_m2t * o.masked for o in outs) / masked}

def unigram_accuracy(train: PackedShards, evals: PackedShards, max_rows: int = 10000) -> float:
    ids, docs = np.asarray(train.ids[:max_rows]), np.asarray(train.doc_ids[:max_rows])
    mode = np.bincount(ids[docs >= 0].astype(np.int64)).argmax()
    eval_ids, eval_docs = np.asarray(evals.ids), np.asarray(evals.doc_ids)
    return float((eval_ids[eval_docs >= 0] == mode).mean())

def eval_at_step(model, phases, eval_shards, params: Params, mask_id, regular_ids, step: int) -> dict:
    phase, sizes = phase_of(phases, step), {params.wsd.decay_to}
    sizes.add(None if phase.mdlm else phase.block_size)
    out = {}
    for size in sizes:
        tag = "mdlm" if size is None else f"b{size}"
        out |= {f"eval/{tag}/{k}": v for k, v in evaluate(model, eval_shards, size, params, mask_id, regular_ids).items()}
    return out

def fingerprint(params: Params, root: Path) -> str:
    code = [sha256_file(Path(module.__file__)) for module in (sys.modules[__name__], objective, masks, train, profiles)]
    inputs = code + [sha256_file(root / "models/init/hildanext.json"), sha256_file(root / "data/tokenized/manifest.json")]
    return params_hash(as_dict(params.wsd), as_dict(params.objective), as_dict(params.tokenize), params.runtime.seed, *profile_part(params), inputs)

def resume_run_id(params: Params, root: Path) -> str | None:
    return checkpoint_run_id(Checkpoints(root / "models/wsd", 1, 0, ""), root / "data/tokenized/manifest.json", lambda: fingerprint(params, root))

def wsd_spec(params: Params, phases: list[Phase], eval_shards, mask_id: int, regular_ids, accum: int, context, net, dist) -> LoopSpec:
    p, o = params.wsd, params.objective
    total = phases[-1].start + phases[-1].steps
    def loss_at(model, batch, step, micro):
        phase, gen = phase_of(phases, step), torch.Generator().manual_seed(p.seed * 1_000_003 + step * 131 + micro)
        block = None if phase.mdlm else phase.block_size
        with context():
            return diffusion_loss(net, batch["input_ids"], batch["doc_ids"], block, o, mask_id, regular_ids, gen, p.block_align, noise=step < o.embed_noise_steps)
    return LoopSpec(total, lambda s: (phase_of(phases, s).name, phase_of(phases, s).block_size), lambda s: lr_at(s, p, total), loss_at,
                    lambda model, step: eval_at_step(model, phases, eval_shards, params, mask_id, regular_ids, step),
                    accum, p.clip, p.checkpoint_every, params.runtime.log_every, f"eval/b{p.decay_to}/loss_m2t", dist.process_index, dist.num_processes)

def wsd_stage(params: Params, root: Path, tracker) -> dict:
    init_dir, out, csv_path = root / "models/init", root / "models/wsd", root / "metrics/wsd_log.csv"
    check_model_folder(init_dir)
    train_shards, eval_shards = (PackedShards(root / "data/tokenized", split, init_dir) for split in ("train", "eval"))
    phases, fp = wsd_phases(params.wsd, train_shards.seq_len), fingerprint(params, root)
    ckpts = Checkpoints(out, params.wsd.keep_last, params.wsd.keep_best, f"eval/b{params.wsd.decay_to}/loss_m2t")
    profile = resolve_profile(params.runtime)
    check_device(profile)
    check_precision(params.runtime, profile)
    micro, accum = micro_steps(params.wsd.batch_size, profile)
    run = mlflow.active_run()
    if run:
        mlflow.log_params({f"resolved.{k}": v for k, v in as_dict(profile).items()})
    model, tokenizer, latest, state = start_state(root / "models/init", params, ckpts, fp, run.info.run_id if run else "", csv_path, run is not None)
    dist, net = distributed(model)
    optimizer = make_optimizer(model, profile, params.wsd.lr, params.wsd.betas, params.wsd.weight_decay, tokenizer.mask_token_id)
    loader = ShardLoader(train_shards, micro, params.wsd.seed)
    scaler = make_scaler(profile, model.device)
    restore(latest, state, optimizer, loader, scaler)
    regular = regular_token_ids(tokenizer)
    if (accum * params.wsd.grad_accum) % dist.num_processes:
        raise ParamsError(f"params.yaml: wsd.batch_size {params.wsd.batch_size} x wsd.grad_accum is not a multiple of micro-batch {micro} x {dist.num_processes} processes")
    spec = wsd_spec(params, phases, eval_shards, tokenizer.mask_token_id, regular, accum * params.wsd.grad_accum // dist.num_processes, lambda: compute_context(profile, model.device), net, dist)
    spec.scaler = scaler
    state = train_loop(model, tokenizer, optimizer, loader, spec, ckpts, state, csv_path, tracker)
    return finish(params, root, model, tokenizer, ckpts, state, spec, phases, (train_shards, eval_shards), regular) if run else {}

def finish(params: Params, root: Path, model, tokenizer, ckpts, state, spec, phases, shards, regular) -> dict:
    model = merged_model(model, root / "models/init", params.runtime)
    save_model(model, tokenizer, root / "models/wsd/final", model_meta(tokenizer, "wsd", params, params.wsd.decay_to, state["fingerprint"], root) | {"eval": state["eval"]})
    best = min(ckpts.all(), key=lambda c: ckpts.state(c)["eval"].get(ckpts.best_key, math.inf))
    half = evaluate(model, shards[1], params.wsd.decay_to, params, tokenizer.mask_token_id, regular, fixed_t=0.5)
    baseline = {"acc_m2t_mask0.5": half["acc_m2t"], "unigram_acc": unigram_accuracy(*shards)}
    metrics = {"steps": spec.total_steps, "final": state["eval"] | baseline, "best_checkpoint": best.name, "best": ckpts.state(best)["eval"], "phases": [as_dict(ph) for ph in phases]}
    write_json_atomic(root / "metrics/wsd.json", metrics)
    return {f"final/{k}": v for k, v in metrics["final"].items()}

wsd_stage.resume_run_id = resume_run_id
