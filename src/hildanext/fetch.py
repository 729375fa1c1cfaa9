# Explicit downloads from the Hugging Face hub; never run by `dvc repro`. Offline they fail fast with one
# line saying what to place where.
# Entry points: fetch_model(p: ModelParams, root) -> Path (Qwen/Qwen3-0.6B at the pinned revision), FetchError.
from pathlib import Path
from hildanext.config import ModelParams
from hildanext.modeling import check_model_folder
MODEL_PATTERNS = ["*.json", "*.safetensors", "merges.txt", "vocab.json", "LICENSE", "README.md"]
class FetchError(RuntimeError):
    pass

def fetch_model(p: ModelParams, root: Path = Path(".")) -> Path:
    from huggingface_hub import snapshot_download
    out = Path(root) / p.local_dir
    place = f"place config.json, model.safetensors, tokenizer.json, tokenizer_config.json, vocab.json and merges.txt of {p.hub_id}@{p.revision} in {out}/"
    try:
        snapshot_download(p.hub_id, revision=p.revision, local_dir=out, allow_patterns=MODEL_PATTERNS, etag_timeout=10)
    except Exception as e:
        raise FetchError(f"fetch-model: cannot download {p.hub_id} ({type(e).__name__}); offline, {place}") from None
    check_model_folder(out)
    return out
