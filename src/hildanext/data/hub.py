# Explicit downloads from the Hugging Face hub; never run by `dvc repro`. Offline they fail fast with one
# line saying what to place where.
# Entry points: fetch_model(p: ModelParams, out) -> out (Qwen/Qwen3-0.6B at the pinned revision), FetchError.
import logging, os, socket
from pathlib import Path
from urllib.parse import urlparse
from hildanext.config import ModelParams
from hildanext.model import check_model_folder
MODEL_PATTERNS = ["*.json", "*.safetensors", "merges.txt", "vocab.json", "LICENSE", "README.md"]
class FetchError(RuntimeError):
    pass

def hub_unreachable(endpoint: str, timeout: float = 5.0) -> str | None:
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    url = urlparse(endpoint)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
    except OSError as e:
        return f"{url.hostname} unreachable: {e.strerror or e}"
    return None

def fetch_model(p: ModelParams, out: Path) -> Path:
    """Download p.hub_id at p.revision into out (the CLI passes model.local_dir)."""
    from huggingface_hub import constants, snapshot_download
    out = Path(out)
    place = ("place config.json, model.safetensors, tokenizer.json, tokenizer_config.json, vocab.json and merges.txt "
             f"of {p.hub_id}@{p.revision} in {out}/")
    if reason := hub_unreachable(constants.ENDPOINT):
        raise FetchError(f"fetch-model: cannot download {p.hub_id} ({reason}); offline, {place}")
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        snapshot_download(p.hub_id, revision=p.revision, local_dir=out, allow_patterns=MODEL_PATTERNS, etag_timeout=10)
    except Exception as e:
        raise FetchError(f"fetch-model: cannot download {p.hub_id} ({type(e).__name__}); offline, {place}") from None
    check_model_folder(out)
    return out
