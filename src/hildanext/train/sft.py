# The sft stage (`hildanext sft`): models/merged + data/sft -> models/sft by the LLaDA2.1 SFT mixture (M2T on
# masked response tokens, T2T on corrupted ones, KEEP, optional complementary masks and MTF), BDLM at
# sft.block_size, through the same loop, checkpoints, resume and profiles as WSD (checkpoints in
# models/sft_ckpts). Eval loss on held-out chats goes to metrics/sft.json. Entry points: sft_spec, evaluate_sft,
# sft_stage.
import math, sys
from pathlib import Path
import mlflow
import torch
from hildanext.train import adapters
from hildanext.train import masks
from hildanext.train import objective
from hildanext.train import profiles
from hildanext.train import loop as train
from hildanext.train.adapters import merged_model
from hildanext.config import Params, ParamsError, as_dict
from hildanext.data.loader import ShardLoader
from hildanext.data.sft_data import SftShards
from hildanext.files import sha256_file, write_json_atomic
from hildanext.model import check_model_folder, model_meta, save_model
from hildanext.train.objective import regular_token_ids, sft_loss
from hildanext.train.profiles import check_device, check_precision, compute_context, make_optimizer, make_scaler, micro_steps, resolve_profile
from hildanext.train.loop import Checkpoints, LoopSpec, checkpoint_run_id, distributed, params_hash, profile_part, restore, start_state, train_loop
from hildanext.train.wsd import lr_at
BEST_KEY = "eval/sft/loss_m2t"
def fingerprint(params: Params, root: Path) -> str:
    code = [sha256_file(Path(module.__file__)) for module in (sys.modules[__name__], objective, masks, train, profiles, adapters)]
    inputs = code + [sha256_file(root / "models/merged/hildanext.json"), sha256_file(root / "data/sft/manifest.json")]
    return params_hash(as_dict(params.sft), as_dict(params.objective), params.runtime.seed, *profile_part(params), inputs)

@torch.no_grad()
def evaluate_sft(model, shards: SftShards, params: Params, mask_id: int, regular_ids, fixed_t=None) -> dict:
    model.eval()
    gen, s = torch.Generator().manual_seed(params.sft.eval_seed), params.sft
    rows, size = min(len(shards), s.eval_rows), micro_steps(s.batch_size, resolve_profile(params.runtime))[0]
    outs = [sft_loss(model, *shards[i : min(i + size, rows)], s.block_size, params.objective, s, mask_id, regular_ids, gen, fixed_t=fixed_t) for i in range(0, rows, size)]
    model.train()
    keys = ("loss_m2t", "loss_t2t", "loss_mtf") if s.mtf else ("loss_m2t", "loss_t2t")
    report = {key: token_mean(outs, key) for key in keys}
    return report | {"acc_m2t": sum(o.acc_m2t * o.masked for o in outs) / (sum(o.masked for o in outs) or 1)}

def token_mean(outs, key: str) -> float:
    return sum(getattr(o, key) * o.tokens for o in outs) / max(sum(o.tokens for o in outs), 1)

def sft_spec(params: Params, eval_shards, mask_id: int, regular_ids, accum: int, context, net, dist) -> LoopSpec:
    s, o = params.sft, params.objective
    def loss_at(model, batch, step, micro):
        gen = torch.Generator().manual_seed(s.seed * 1_000_003 + step * 131 + micro)
        with context():
            return sft_loss(net, batch["input_ids"], batch["doc_ids"], batch["supervised"], s.block_size, o, s, mask_id, regular_ids, gen)
    def eval_at(model, step):
        return {f"eval/sft/{k}": v for k, v in evaluate_sft(model, eval_shards, params, mask_id, regular_ids).items()}
    return LoopSpec(s.steps, lambda step: ("sft", s.block_size), lambda step: lr_at(step, s, s.steps), loss_at, eval_at,
                    accum, s.clip, s.checkpoint_every, params.runtime.log_every, BEST_KEY, dist.process_index, dist.num_processes)

def held_out(root: Path, tokenizer_dir: Path) -> SftShards:
    shards = SftShards(root / "data/sft", "eval", tokenizer_dir)
    if len(shards) == 0:
        print("sft: the eval split is empty; evaluating on the first train rows instead")
        return SftShards(root / "data/sft", "train", tokenizer_dir)
    return shards

def resume_run_id(params: Params, root: Path) -> str | None:
    return checkpoint_run_id(Checkpoints(root / "models/sft_ckpts", 1, 0, ""), root / "data/sft/manifest.json", lambda: fingerprint(params, root))

def sft_stage(params: Params, root: Path, tracker) -> dict:
    base_dir, csv_path, s = root / "models/merged", root / "metrics/sft_log.csv", params.sft
    check_model_folder(base_dir)
    train_shards, eval_shards = SftShards(root / "data/sft", "train", root / s.data.tokenizer), held_out(root, root / s.data.tokenizer)
    if train_shards.manifest["block_size"] != s.block_size:
        raise ParamsError(f"params.yaml: sft.block_size {s.block_size} differs from data/sft's {train_shards.manifest['block_size']}; re-run the sft_data stage")
    ckpts, profile, fp = Checkpoints(root / "models/sft_ckpts", s.keep_last, s.keep_best, BEST_KEY), resolve_profile(params.runtime), fingerprint(params, root)
    check_device(profile)
    check_precision(params.runtime, profile)
    micro, accum = micro_steps(s.batch_size, profile)
    run = mlflow.active_run()
    if run:
        mlflow.log_params({f"resolved.{k}": v for k, v in as_dict(profile).items()})
    model, tokenizer, latest, state = start_state(base_dir, params, ckpts, fp, run.info.run_id if run else "", csv_path, run is not None, "sft")
    dist, net = distributed(model)
    optimizer = make_optimizer(model, profile, s.lr, s.betas, s.weight_decay, tokenizer.mask_token_id)
    loader = ShardLoader(train_shards, micro, s.seed)
    scaler = make_scaler(profile, model.device)
    restore(latest, state, optimizer, loader, scaler)
    if (accum * s.grad_accum) % dist.num_processes:
        raise ParamsError(f"params.yaml: sft.batch_size {s.batch_size} x sft.grad_accum is not a multiple of micro-batch {micro} x {dist.num_processes} processes")
    regular = regular_token_ids(tokenizer)
    spec = sft_spec(params, eval_shards, tokenizer.mask_token_id, regular, accum * s.grad_accum // dist.num_processes, lambda: compute_context(profile, model.device), net, dist)
    spec.scaler = scaler
    start = evaluate_sft(model, eval_shards, params, tokenizer.mask_token_id, regular) if latest is None else state.get("start_eval", {})
    state = train_loop(model, tokenizer, optimizer, loader, spec, ckpts, state | {"start_eval": start}, csv_path, tracker)
    return finish(params, root, merged_model(model, base_dir, params.runtime), tokenizer, ckpts, state) if run else {}

def finish(params: Params, root: Path, model, tokenizer, ckpts: Checkpoints, state: dict) -> dict:
    s = params.sft
    save_model(model, tokenizer, root / "models/sft", model_meta(tokenizer, "sft", params, s.block_size, state["fingerprint"], root) | {"eval": state["eval"]})
    best = min(ckpts.all(), key=lambda c: ckpts.state(c)["eval"].get(BEST_KEY, math.inf))
    metrics = {"steps": s.steps, "start": state["start_eval"], "final": state["eval"], "best_checkpoint": best.name, "best": ckpts.state(best)["eval"]}
    write_json_atomic(root / "metrics/sft.json", metrics)
    return {f"final/{k}": v for k, v in state["eval"].items()} | {f"start/{k}": v for k, v in state["start_eval"].items()}

sft_stage.resume_run_id = resume_run_id
