# Training checkpoints of WSD and SFT: ckpt-<step> folders (weights, tokenizer, optimizer state only in the
# latest, trainer_state.json with step and phase), pruned to the last N plus the best k by an eval key among the
# checkpoints of the phase being trained (at the end: the final phase, the merge's candidates); a run resumes only
# from a checkpoint with the same fingerprint. Entry points: Checkpoints, params_hash, resumable, checkpoint_run_id.
import hashlib, json, shutil
from pathlib import Path
import torch
from hildanext.files import atomic_dir, write_json_atomic
def params_hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]

class Checkpoints:
    def __init__(self, folder: Path, keep_last: int, keep_best: int, best_key: str):
        self.folder, self.keep_last, self.keep_best, self.best_key = Path(folder), keep_last, keep_best, best_key
    def all(self) -> list[Path]:
        return sorted(self.folder.glob("ckpt-*")) if self.folder.exists() else []
    def state(self, path: Path) -> dict:
        return json.loads((path / "trainer_state.json").read_text())
    def latest(self) -> Path | None:
        found = self.all()
        return found[-1] if found else None
    def save(self, model, tokenizer, optimizer, state: dict) -> Path:
        out = self.folder / f"ckpt-{state['step']:07d}"
        with atomic_dir(out) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            write_json_atomic(tmp / "trainer_state.json", state)
        self.prune()
        return out
    def ranked(self) -> list[Path]:
        """The scored checkpoints of the latest checkpoint's phase, best (lowest best_key) first."""
        states = {p: self.state(p) for p in self.all()}
        phase = states[max(states)].get("phase") if states else None
        scored = [p for p, s in states.items() if s.get("phase") == phase and self.best_key in s.get("eval", {})]
        return sorted(scored, key=lambda p: states[p]["eval"][self.best_key])
    def prune(self) -> None:
        found = self.all()
        keep = set(found[-self.keep_last :]) | set(self.ranked()[: self.keep_best])
        for path in found:
            if path not in keep:
                shutil.rmtree(path)
            elif path != found[-1]:
                (path / "optimizer.pt").unlink(missing_ok=True)
    def best(self) -> Path:
        """The best checkpoint of the latest's phase, else the latest."""
        return next(iter(self.ranked()), self.latest())

def resumable(ckpts: Checkpoints, fp: str) -> tuple[Path | None, str]:
    latest = ckpts.latest()
    if latest is None:
        return None, "no checkpoint"
    if ckpts.state(latest).get("fingerprint") != fp:
        found = ckpts.state(latest).get("fingerprint")
        return None, f"{latest} was trained with other params or inputs (hash {found} != {fp})"
    return latest, f"resuming from {latest}"

def checkpoint_run_id(ckpts: Checkpoints, manifest: Path, fingerprint) -> str | None:
    """The MLflow run id of the checkpoint a stage would resume from, else None (fingerprint is a thunk)."""
    if ckpts.latest() is None or not manifest.exists():
        return None
    latest, _ = resumable(ckpts, fingerprint())
    return ckpts.state(latest)["run_id"] if latest else None
