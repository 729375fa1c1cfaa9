# The prepare stage (`hildanext prepare`): every configured source -> data/processed/{train,eval}.parquet +
# manifest.json (normalised, filtered, deduplicated, mixed and split documents), written atomically.
# Entry point: run(params, tracker).
from hildanext.config import Params
from hildanext.data.prepare import write_splits
from hildanext.files import atomic_dir, write_json_atomic
from hildanext.pipeline import paths
def run(params: Params, tracker) -> dict:
    with atomic_dir(paths.PROCESSED) as tmp:
        manifest = write_splits(params.prepare, tmp)
        write_json_atomic(tmp / "manifest.json", manifest)
    flat = {f"{s}/{k}": v for s, c in manifest["splits"].items() for k, v in c.items()}
    return flat | {f"skipped/{k}": v for k, v in manifest["skipped"].items()}
