# The one stage setup of WSD and SFT: resolve the runtime profile once, check device and precision, load the
# model fresh or from the resumable checkpoint (fingerprint match), wrap it for DDP, build optimizer, loader and
# loss scaler, restore their state, then run the shared loop. Entry points: TrainJob (what a stage trains from
# and into), start_training(job, p, params, shards, run_id) -> TrainRun (.spec, .train, .generator, .context),
# fingerprint(job, profile, lora), distributed(model).
import dataclasses, shutil, sys
from dataclasses import dataclass
from pathlib import Path
import torch
from hildanext.config import LoraParams, Params, ParamsError, TrainParams
from hildanext.data.loader import ShardLoader
from hildanext.files import sha256_file
from hildanext.train import adapters, checkpoints, evaluate, loop, masks, objective, profiles, schedule
from hildanext.train.adapters import training_model
from hildanext.train.checkpoints import Checkpoints, params_hash, resumable
from hildanext.train.loop import LoopSpec, train_loop, truncate_csv
from hildanext.train.objective import ObjectiveSetup, as_supervised, regular_token_ids
from hildanext.train.profiles import (Profile, check_device, check_precision, compute_context, make_optimizer,
                                      make_scaler, micro_steps, resolve_profile)
from hildanext.train.schedule import train_lr
CODE = (adapters, checkpoints, evaluate, loop, masks, objective, profiles, schedule, sys.modules[__name__])
@dataclass(frozen=True)
class TrainJob:
    stage: str
    base_dir: Path
    ckpt_dir: Path
    csv_path: Path
    best_key: str
    sections: tuple
    inputs: tuple[Path, ...]

def fingerprint(job: TrainJob, profile: Profile, lora: LoraParams) -> str:
    """Params sections, the resolved profile (+ lora when used), the training code and the input files."""
    code = [Path(module.__file__) for module in CODE]
    files = [sha256_file(path) for path in (*code, *job.inputs)]
    extra = [dataclasses.asdict(lora)] if profile.adapter == "lora" else []
    return params_hash(*job.sections, dataclasses.asdict(profile), *extra, files)

def distributed(model):
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if accelerator.num_processes > 1:
        model.to(accelerator.device)
    net = as_supervised(model)
    return accelerator, accelerator.prepare_model(net) if accelerator.num_processes > 1 else net

@dataclass
class TrainRun:
    job: TrainJob
    p: TrainParams
    params: Params
    profile: Profile
    ckpts: Checkpoints
    model: object
    tokenizer: object
    latest: Path | None
    state: dict
    micro: int
    accum: int
    dist: object = None
    net: object = None
    optimizer: object = None
    loader: ShardLoader | None = None
    scaler: object = None
    regular: torch.Tensor | None = None
    tracked: bool = False
    @property
    def mask_id(self) -> int:
        return self.tokenizer.mask_token_id
    def loss_setup(self, block_size: int | None, align: str = "row") -> ObjectiveSetup:
        return ObjectiveSetup(self.params.objective, self.mask_id, self.regular, block_size, align)
    def context(self):
        return compute_context(self.profile, self.model.device)
    def generator(self, step: int, micro: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.p.seed * 1_000_003 + step * 131 + micro)
    def spec(self, total: int, phase_at, loss_at, eval_at) -> LoopSpec:
        per_rank = self.accum * self.p.grad_accum // self.dist.num_processes
        p, lr_at = self.p, (lambda step: train_lr(step, self.p, total))
        return LoopSpec(total, phase_at, lr_at, loss_at, eval_at, per_rank, p.clip, p.checkpoint_every,
                        self.params.runtime.log_every, self.job.best_key, self.dist.process_index,
                        self.dist.num_processes, self.scaler)
    def train(self, spec: LoopSpec, tracker) -> dict:
        self.state = train_loop(self, spec, tracker)
        return self.state

def load_start(job: TrainJob, params: Params, profile: Profile, ckpts: Checkpoints, run_id: str):
    """(model, tokenizer, latest checkpoint or None, state); a tracked fresh run clears old checkpoints and CSV."""
    fp = fingerprint(job, profile, params.lora)
    latest, why = resumable(ckpts, fp)
    print(f"{job.stage}: {why}")
    if latest is None:
        if run_id:
            shutil.rmtree(ckpts.folder, ignore_errors=True)
            job.csv_path.unlink(missing_ok=True)
        model, tokenizer = training_model(job.base_dir, None, params, profile)
        return model, tokenizer, None, {"step": 0, "fingerprint": fp, "run_id": run_id, "phase_runs": {}}
    state = ckpts.state(latest)
    if run_id:
        truncate_csv(job.csv_path, state["step"] - 1)
    model, tokenizer = training_model(job.base_dir, latest, params, profile)
    return model, tokenizer, latest, state

def restore(latest: Path | None, state: dict, optimizer, loader, scaler=None) -> None:
    if latest is not None:
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt"))
        loader.load_state(state["loader"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])

def start_training(job: TrainJob, p: TrainParams, params: Params, shards, run_id: str = "") -> TrainRun:
    """run_id: the tracked MLflow run ("" when untracked, e.g. rank > 0: no CSV and no clearing)."""
    profile = resolve_profile(params.runtime)
    check_device(profile)
    check_precision(params.runtime, profile)
    micro, accum = micro_steps(p.batch_size, profile)
    ckpts = Checkpoints(job.ckpt_dir, p.keep_last, p.keep_best, job.best_key)
    run = TrainRun(job, p, params, profile, ckpts, *load_start(job, params, profile, ckpts, run_id), micro, accum)
    run.dist, run.net = distributed(run.model)
    run.optimizer = make_optimizer(run.model, profile, p.lr, p.betas, p.weight_decay, run.mask_id)
    run.loader, run.scaler = ShardLoader(shards, micro, p.seed), make_scaler(profile, run.model.device)
    restore(run.latest, run.state, run.optimizer, run.loader, run.scaler)
    run.regular, run.tracked = regular_token_ids(run.tokenizer), bool(run_id)
    if (accum * p.grad_accum) % run.dist.num_processes:
        raise ParamsError(f"params.yaml: {job.stage}.batch_size {p.batch_size} x {job.stage}.grad_accum is not a "
                          f"multiple of micro-batch {micro} x {run.dist.num_processes} processes")
    return run
