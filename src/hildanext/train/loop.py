# The one training loop shared by WSD and SFT: gradient accumulation, clipping, LR per step, NaN/inf guard,
# MLflow logging (a nested run per phase), a per-step CSV for DVC plots, checkpoints every N steps and at
# phase ends, fp16 loss scaling, exact resume. Entry points: LoopSpec, train_loop(run, spec, tracker) (run: a
# train.setup.TrainRun), TrainingError, optimizer_step, scaled_backward (for passes a loss backwards early),
# truncate_csv (cut the CSV back to a resumed step).
import csv, time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
import torch
from hildanext.model import peak_memory_mb
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

def scaled_backward(spec: LoopSpec) -> Callable:
    """Backward of one loss term as a step runs it (/grad_accum, fp16 scaler); loss terms may call it early."""
    def backward(term: torch.Tensor) -> None:
        loss = term / spec.grad_accum
        (loss if spec.scaler is None else spec.scaler.scale(loss)).backward()
    return backward

def optimizer_step(model, optimizer, spec: LoopSpec, step: int, batches) -> tuple[list, float]:
    for group in optimizer.param_groups:
        group["lr"] = spec.lr_at(step)
    outs = []
    for micro, batch in enumerate(batches):
        out = spec.loss_at(model, batch, step, spec.rank * spec.grad_accum + micro)
        if not torch.isfinite(out.loss):
            raise TrainingError(f"loss is {out.loss.item()} at step {step}")
        if out.loss.requires_grad:
            scaled_backward(spec)(out.loss)
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
    means["loss_cap"] = sum(o.loss_cap or 0.0 for o in outs) / len(outs)
    means["loss_kd"] = sum(o.loss_kd or 0.0 for o in outs) / len(outs)
    tokens = sum(o.tokens for o in outs)
    return means | {"block_size": block_size, "lr": lr, "grad_norm": grad_norm,
                    "tokens_per_s": tokens / max(seconds, 1e-9), "peak_mem_mb": peak_memory_mb()}

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
    mlflow.MlflowClient().log_batch(parent_id,
                                    metrics=[mlflow.entities.Metric(k, v, stamp, step) for k, v in metrics.items()])
    append_csv(csv_path, {"step": step, "phase": phase} | metrics)

def phase_steps(spec: LoopSpec, start: int) -> tuple[str, int, int]:
    name, block_size = spec.phase_at(start)
    end = start
    while end < spec.total_steps and spec.phase_at(end)[0] == name:
        end += 1
    return name, block_size, end

def run_phase(run, spec: LoopSpec, state: dict) -> dict:
    """Steps of the phase at state["step"] on run's model, optimizer, loader and checkpoints; the new state."""
    import mlflow
    name, block_size, end = phase_steps(spec, state["step"])
    while state["step"] < end:
        step, started = state["step"], time.perf_counter()
        outs, grad_norm = optimizer_step(run.model, run.optimizer, spec, step,
                                         run.loader.next_step(spec.grad_accum, spec.rank, spec.world))
        state = (state | {"step": step + 1, "loader": run.loader.state()}
                 | ({"scaler": spec.scaler.state_dict()} if spec.scaler else {}))
        if spec.rank:
            continue
        if step % spec.log_every == 0 or step + 1 == end:
            log_step(step_metrics(outs, grad_norm, spec.lr_at(step), block_size, time.perf_counter() - started), step,
                     state["run_id"], run.job.csv_path, name)
        if state["step"] % spec.checkpoint_every == 0 or state["step"] == end:
            state = state | {"phase": name, "eval": spec.eval_at(run.model, step)}
            mlflow.log_metrics(state["eval"], step=step)
            run.ckpts.save(run.model, run.tokenizer, run.optimizer, state)
    return state

def train_loop(run, spec: LoopSpec, tracker) -> dict:
    """Every phase from run.state to spec.total_steps, each under its nested tracker run; the final state."""
    run.model.train()
    state = run.state
    while state["step"] < spec.total_steps:
        name, block_size, _ = phase_steps(spec, state["step"])
        runs = state.setdefault("phase_runs", {})
        with tracker.phase(name, {"phase": name, "block_size": block_size}, runs.get(name)) as child:
            state["phase_runs"] = runs | ({name: child} if child else {})
            try:
                state = run_phase(run, spec, state)
            except TrainingError as e:
                last = run.ckpts.latest()
                raise TrainingError(f"{e} (phase {name}); stopped, the last good checkpoint is "
                                    f"{last or 'none'}") from None
    return state
