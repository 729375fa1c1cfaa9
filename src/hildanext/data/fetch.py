# Explicit downloads of the raw corpora into data/raw (params prepare.fetch); never run by `dvc repro`.
# Dolma v1_6-sample: the URL list comes from the allenai/dolma dataset repo, the shards over resumable plain HTTP
# (<name>.part files, Range requests, size checks). TinyStories: hf_hub_download. Offline it fails fast in one line.
# Entry points: fetch_data(p, dest, what) -> summary; fetch_dolma_shards(urls, out_dir, shards, max_bytes) -> summary;
# plan_shards(urls, sizes, shards, max_bytes); download(url, out, expected_size) -> "downloaded" | "skipped".
import http.client, logging, os, urllib.request
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse
from hildanext.config import FetchDataParams
from hildanext.data.hub import FetchError, hub_unreachable
CHUNK = 1 << 20
USER_AGENT = {"User-Agent": "hildanext-fetch-data"}
SOURCES = ("dolma", "tinystories")
DOLMA_REPO, TINYSTORIES_REPO = "allenai/dolma", "roneneldan/TinyStories"
PLACE = {"dolma": "Dolma v1_6-sample .json.gz shards in {}/", "tinystories": "TinyStories files in {}/"}
def place_hint(**dirs: Path) -> str:
    return "offline, place " + " and ".join(PLACE[source].format(folder) for source, folder in dirs.items())

def one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__

def preflight(endpoint: str, what: str, hint: str) -> None:
    if reason := hub_unreachable(endpoint):
        raise FetchError(f"fetch-data: cannot reach {what} {endpoint} ({reason}); {hint}")

def origin(url: str) -> str:
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"

def hub_file(repo_id: str, filename: str, revision: str, local_dir: Path, hint: str) -> Path:
    from huggingface_hub import hf_hub_download
    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename, repo_type="dataset", revision=revision,
                                    local_dir=local_dir, etag_timeout=10))
    except Exception as e:
        raise FetchError(f"fetch-data: cannot download {repo_id}/{filename}@{revision[:12]} ({type(e).__name__}); "
                         f"{hint}") from None

def read_url_list(path: Path) -> list[str]:
    lines = (line.strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]

def remote_size(url: str, timeout: float = 30.0) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=USER_AGENT, method="HEAD"),
                                    timeout=timeout) as response:
            length = response.headers.get("Content-Length")
    except (OSError, http.client.HTTPException) as e:
        raise FetchError(f"fetch-data: HEAD {url} failed ({one_line(e)})") from None
    if length is None:
        raise FetchError(f"fetch-data: HEAD {url} sent no Content-Length, so the download cannot be size-checked")
    return int(length)

def plan_shards(urls: list[str], sizes: Iterable[int], shards: int = 0, max_bytes: int = 0) -> list[tuple[str, int]]:
    plan, total = [], 0
    for url, size in zip(urls[:shards] if shards else urls, sizes, strict=False):
        if max_bytes and total + size > max_bytes:
            break
        plan.append((url, size))
        total += size
    return plan

def receive(url: str, part: Path, have: int, timeout: float) -> int:
    request = urllib.request.Request(url, headers=USER_AGENT | ({"Range": f"bytes={have}-"} if have else {}))
    with urllib.request.urlopen(request, timeout=timeout) as response:
        resumed = response.status == 206
        if resumed and not response.headers.get("Content-Range", "").startswith(f"bytes {have}-"):
            raise FetchError(f"fetch-data: {url} answered Range bytes={have}- with "
                             f"{response.headers.get('Content-Range')}")
        received = 0
        with open(part, "ab" if resumed else "wb") as sink:
            while chunk := response.read(CHUNK):
                sink.write(chunk)
                received += len(chunk)
    return received

def download(url: str, out: Path, expected_size: int, timeout: float = 60.0) -> str:
    out, part = Path(out), Path(out).with_name(Path(out).name + ".part")
    if out.exists() and out.stat().st_size == expected_size:
        return "skipped"
    out.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.exists() else 0
    if have > expected_size:
        part.unlink()
        have = 0
    try:
        if have < expected_size:
            receive(url, part, have, timeout)
    except (OSError, http.client.HTTPException) as e:
        raise FetchError(f"fetch-data: downloading {out.name} from {url} failed ({one_line(e)}); rerun to resume from "
                         f"{part.name}") from None
    size = part.stat().st_size if part.exists() else 0
    if size != expected_size:
        raise FetchError(f"fetch-data: {out.name}: got {size} bytes, expected {expected_size} (Content-Length of "
                         f"{url}); rerun to resume from {part.name}")
    os.replace(part, out)
    return "downloaded"

def new_summary() -> dict:
    return {"downloaded": [], "skipped": [], "bytes": 0, "total_bytes": 0}

def record(summary: dict, path: Path, status: str, size: int) -> None:
    summary[status].append(str(path))
    summary["bytes"] += size if status == "downloaded" else 0
    summary["total_bytes"] += size

def merge(*summaries: dict) -> dict:
    merged = new_summary()
    for summary in summaries:
        for key in merged:
            merged[key] += summary[key]
    return merged

def fetch_dolma_shards(urls: list[str], out_dir: Path, shards: int = 0, max_bytes: int = 0) -> dict:
    if not urls:
        raise FetchError("fetch-data: the Dolma URL list is empty")
    preflight(origin(urls[0]), "the Dolma shard host", place_hint(dolma=out_dir))
    plan = plan_shards(urls, (remote_size(url) for url in urls), shards, max_bytes)
    if not plan:
        raise FetchError(f"fetch-data: dolma_max_bytes={max_bytes} is smaller than the first shard {urls[0]}")
    summary = new_summary()
    for url, size in plan:
        out = Path(out_dir) / Path(urlparse(url).path).name
        record(summary, out, download(url, out, size), size)
    return summary

def fetch_dolma(p: FetchDataParams, out_dir: Path, hint: str) -> dict:
    url_list = hub_file(DOLMA_REPO, p.dolma_url_list, p.dolma_revision, out_dir, hint)
    return fetch_dolma_shards(read_url_list(url_list), out_dir, p.dolma_shards, p.dolma_max_bytes)

def file_stamp(path: Path) -> tuple[int, int] | None:
    return (path.stat().st_size, path.stat().st_mtime_ns) if path.exists() else None

def fetch_tinystories(p: FetchDataParams, out_dir: Path, hint: str) -> dict:
    summary = new_summary()
    for name in p.tinystories_files:
        before = file_stamp(out_dir / name)
        path = hub_file(TINYSTORIES_REPO, name, p.tinystories_revision, out_dir, hint)
        record(summary, path, "skipped" if file_stamp(path) == before else "downloaded", path.stat().st_size)
    return summary

def fetch_data(p: FetchDataParams, dest: Path, what: tuple[str, ...] = SOURCES) -> dict:
    """Download the chosen sources into dest/<source> (the CLI passes prepare.fetch.dest)."""
    from huggingface_hub import constants
    if unknown := sorted(set(what) - set(SOURCES)):
        raise FetchError(f"fetch-data: unknown source(s) {', '.join(unknown)}; choose from {', '.join(SOURCES)}")
    dest = Path(dest)
    hint = place_hint(**{source: dest / source for source in SOURCES if source in what})
    preflight(constants.ENDPOINT, "the Hugging Face hub", hint)
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    parts = [fetch_dolma(p, dest / "dolma", hint)] if "dolma" in what else []
    parts += [fetch_tinystories(p, dest / "tinystories", hint)] if "tinystories" in what else []
    return merge(*parts) | {"dest": str(dest)}
