# The repository paths of every DVC stage's inputs and outputs (the same table as dvc.yaml), relative to the
# working directory, the DVC root. Only pipeline modules read it; library code gets these folders passed in.
# Entry points: the folder constants, metrics(stage), log_csv(stage), base_folder(params), commit() (of the checkout).
from pathlib import Path
from hildanext.config import Params
from hildanext.files import git_commit
from hildanext.model import ModelFolderError
DEMO_BASE, INIT, WSD, MERGED = Path("models/demo-base"), Path("models/init"), Path("models/wsd"), Path("models/merged")
SFT, SFT_CKPTS, EXPORT = Path("models/sft"), Path("models/sft_ckpts"), Path("models/export")
PROCESSED, TOKENIZED, SFT_DATA = Path("data/processed"), Path("data/tokenized"), Path("data/sft")
EVAL_DATA, DISTILL_DATA = Path("data/eval"), Path("data/distill")
DISTILLED, DISTILL_CKPTS = Path("models/distilled"), Path("models/distill_ckpts")
METRICS = Path("metrics")
def metrics(stage: str) -> Path:
    return METRICS / f"{stage}.json"

def log_csv(stage: str) -> Path:
    return METRICS / f"{stage}_log.csv"

def commit() -> str:
    """The git commit of the working directory's checkout (what hildanext.json records as git_commit)."""
    return git_commit(Path("."))

def base_folder(params: Params) -> Path:
    """The AR base model: models/demo-base for model.base = demo, else the folder model.base names."""
    base = DEMO_BASE if params.model.base == "demo" else Path(params.model.base)
    if not base.exists():
        fetch = params.model.base == params.model.local_dir
        hint = "run `hildanext fetch-model`" if fetch else "point model.base at a local Qwen3 folder"
        raise ModelFolderError(f"model.base: {base} does not exist; {hint}")
    return base
