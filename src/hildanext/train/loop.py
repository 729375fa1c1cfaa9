# The one training loop shared by WSD and SFT: gradient accumulation, clipping, LR per step, NaN/inf guard,
# MLflow logging (a nested run per phase), a per-step CSV for DVC plots, checkpoints every N steps and at
# phase ends (keep the last N plus the best k; optimizer state only in the latest), fp16 loss scaling, exact resume.
# Entry points: LoopSpec, Checkpoints, params_hash, train_loop, TrainingError; resumable, start_state (load the
# model for a fresh or resumed run), restore, checkpoint_run_id, profile_part and distributed (accelerate +
# DDP wrap), shared by WSD and SFT.
import csv, hashlib, json, resource, shutil, time
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
import torch
from hildanext.train.adapters import training_model
from hildanext.files import atomic_dir, write_json_atomic
from hildanext.train.objective import as_supervised
from hildanext.train.profiles import resolve_profile
class TrainingError(RuntimeError):
    pass

@dataclass
class LoopSpec:
    total_steps: int
    phase_at: Callable[[int], tuple[str, int]]
    lr_at: Callable[[int], float]
    loss_at: Callable
    eval_at: Callable[[object, int], dict]
    grad_accum: int = 1
    clip: float = 1.0
    checkpoint_every: int = 50
    log_every: int = 10
    best_key: str = "eval/loss"
    rank: int = 0
    world: int = 1
    scaler: object = None

def params_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

class Checkpoints:
    def __init__(self, root: Path, keep_last: int, keep_best: int, best_key: str):
        self.root, self.keep_last, self.keep_best, self.best_key = Path(root), keep_last, keep_best, best_key
    def all(self) -> list[Path]:
        return sorted(self.root.glob("ckpt-*")) if self.root.exists() else []
    def state(self, path: Path) -> dict:
        return json.loads((path / "trainer_state.json").read_text())
    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None
    def save(self, model, tokenizer, optimizer, state: dict) -> Path:
        out = self.root / f"ckpt-{state['step']:07d}"
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            write_json_atomic(tmp / "trainer_state.json", state)
        self.prune()
        return out
    def prune(self) -> None:
        found = self.all()
        scored = [p for p in found if self.best_key in self.state(p).get("eval", {})]
        best = sorted(scored, key=lambda p: self.state(p)["eval"][self.best_key])[: self.keep_best]
        keep = set(found[-self.keep_last :]) | set(best)
        for path in found:
            if path not in keep:
                shutil.rmtree(path)
            elif path != found[-1]:
                (path / "optimizer.pt").unlink(missing_ok=True)

def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

def optimizer_step(model, optimizer, spec: LoopSpec, step: int, batches) -> tuple[list, float]:
    for group in optimizer.param_groups:
        group["lr"] = spec.lr_at(step)
    outs = []
    for micro, batch in enumerate(batches):
        out = spec.loss_at(model, batch, step, spec.rank * spec.grad_accum + micro)
        if not torch.isfinite(out.loss):
            raise TrainingError(f"loss is {out.loss.item()} at step {step}")
        loss = out.loss / spec.grad_accum
        (loss if spec.scaler is None else spec.scaler.scale(loss)).backward()
        outs.append(out)
    if spec.scaler is not None:
        spec.scaler.unscale_(optimizer)
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), spec.clip).item()
    if spec.scaler is not None:
        spec.scaler.step(optimizer)
        spec.scaler.update()
    elif not torch.isfinite(torch.tensor(grad_norm)):
        raise TrainingError(f"gradient norm is {grad_norm} at step {step}")
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return outs, grad_norm

def step_metrics(outs, grad_norm: float, lr: float, block_size: int, seconds: float) -> dict:
    keys = ("loss", "loss_m2t", "loss_t2t", "acc_m2t") + (("loss_mtf",) if outs[0].loss_mtf is not None else ())
    means = {key: sum(float(torch.as_tensor(getattr(o, key)).detach()) for o in outs) / len(outs) for key in keys}
    tokens = sum(o.tokens for o in outs)
    return means | {"block_size": block_size, "lr": lr, "grad_norm": grad_norm, "tokens_per_s": tokens / max(seconds, 1e-9), "peak_mem_mb": peak_memory_mb()}

def append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)

def truncate_csv(path: Path, step: int) -> None:
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= step]
    path.unlink()
    for row in rows:
        append_csv(path, row)

def log_step(metrics: dict, step: int, parent_id: str, csv_path: Path, phase: str) -> None:
    import mlflow
    mlflow.log_metrics(metrics, step=step)
    stamp = int(time.time() * 1000)
    mlflow.MlflowClient().log_batch(parent_id, metrics=[mlflow.entities.Metric(k, v, stamp, step) for k, v in metrics.items()])
    append_csv(csv_path, {"step": step, "phase": phase} | metrics)

def phase_steps(spec: LoopSpec, start: int) -> tuple[str, int, int]:
    name, block_size = spec.phase_at(start)
    end = start
    while end < spec.total_steps and spec.phase_at(end)[0] == name:
        end += 1
    return name, block_size, end

def run_phase(model, tokenizer, optimizer, loader, spec: LoopSpec, ckpts: Checkpoints, state: dict, csv_path: Path) -> dict:
    import mlflow
    name, block_size, end = phase_steps(spec, state["step"])
    while state["step"] < end:
        step, started = state["step"], time.perf_counter()
        outs, grad_norm = optimizer_step(model, optimizer, spec, step, loader.next_step(spec.grad_accum, spec.rank, spec.world))
        state = state | {"step": step + 1, "loader": loader.state()} | ({"scaler": spec.scaler.state_dict()} if spec.scaler else {})
        if spec.rank:
            continue
        if step % spec.log_every == 0 or step + 1 == end:
            log_step(step_metrics(outs, grad_norm, spec.lr_at(step), block_size, time.perf_counter() - started), step, state["run_id"], csv_path, name)
        if state["step"] % spec.checkpoint_every == 0 or state["step"] == end:
            state = state | {"phase": name, "eval": spec.eval_at(model, step)}
            mlflow.log_metrics(state["eval"], step=step)
            ckpts.save(model, tokenizer, optimizer, state)
    return state

def train_loop(model, tokenizer, optimizer, loader, spec: LoopSpec, ckpts: Checkpoints, state: dict, csv_path: Path, tracker) -> dict:
    model.train()
    while state["step"] < spec.total_steps:
        name, block_size, _ = phase_steps(spec, state["step"])
        runs = state.setdefault("phase_runs", {})
        with tracker.phase(name, {"phase": name, "block_size": block_size}, runs.get(name)) as child:
            state["phase_runs"] = runs | ({name: child} if child else {})
            try:
                state = run_phase(model, tokenizer, optimizer, loader, spec, ckpts, state, csv_path)
            except TrainingError as e:
                last = ckpts.latest()
                raise TrainingError(f"{e} (phase {name}); stopped, the last good checkpoint is {last or 'none'}") from None
    return state

def resumable(ckpts: Checkpoints, fp: str) -> tuple[Path | None, str]:
    latest = ckpts.latest()
    if latest is None:
        return None, "no checkpoint"
    if ckpts.state(latest).get("fingerprint") != fp:
        return None, f"{latest} was trained with other params or inputs (hash {ckpts.state(latest).get('fingerprint')} != {fp})"
    return latest, f"resuming from {latest}"

def start_state(base_dir: Path, params, ckpts: Checkpoints, fp: str, run_id: str, csv_path: Path, main: bool = True, stage: str = "wsd"):
    latest, why = resumable(ckpts, fp)
    print(f"{stage}: {why}")
    if latest is None:
        if main:
            shutil.rmtree(ckpts.root, ignore_errors=True)
            csv_path.unlink(missing_ok=True)
        model, tokenizer = training_model(base_dir, None, params, resolve_profile(params.runtime))
        return model, tokenizer, None, {"step": 0, "fingerprint": fp, "run_id": run_id, "phase_runs": {}}
    state = ckpts.state(latest)
    if main:
        truncate_csv(csv_path, state["step"] - 1)
    model, tokenizer = training_model(base_dir, latest, params, resolve_profile(params.runtime))
    return model, tokenizer, latest, state

def distributed(model):
    from accelerate import Accelerator
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    if accelerator.num_processes > 1:
        model.to(accelerator.device)
    net = as_supervised(model)
    return accelerator, accelerator.prepare_model(net) if accelerator.num_processes > 1 else net

def profile_part(params) -> list:
    """The resolved profile, plus the lora params when the adapter is LoRA: what a run's fingerprint needs."""
    profile = resolve_profile(params.runtime)
    return [dataclasses.asdict(profile)] + ([dataclasses.asdict(params.lora)] if profile.adapter == "lora" else [])

def checkpoint_run_id(ckpts: Checkpoints, manifest: Path, fingerprint) -> str | None:
    """The MLflow run id of the checkpoint a stage would resume from, else None (fingerprint is a thunk)."""
    if ckpts.latest() is None or not manifest.exists():
        return None
    latest, _ = resumable(ckpts, fingerprint())
    return json.loads((latest / "trainer_state.json").read_text())["run_id"] if latest else None

def restore(latest: Path | None, state: dict, optimizer, loader, scaler=None) -> None:
    if latest is not None:
        optimizer.load_state_dict(torch.load(latest / "optimizer.pt"))
        loader.load_state(state["loader"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
