# fetch-data against a real local HTTP server (ThreadingHTTPServer on 127.0.0.1 with HEAD, GET and Range/206)
# serving small gzipped JSON Lines Dolma-like shards: shard plans, size-checked and resumed downloads, skips,
# short bodies, and the one-line offline failures. Hub mocked: the Hugging Face hub cannot be reached in tests,
# so hf_hub_download is replaced by a fake that writes the URL list and TinyStories file locally.
import gzip, json, random, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import huggingface_hub
import pytest
from huggingface_hub import constants
from hildanext.config import FetchDataParams
from hildanext.data.fetch import download, fetch_data, fetch_dolma_shards, plan_shards, read_url_list, remote_size
from hildanext.data.hub import FetchError
WORDS = "the cat sat on a warm mat while lily found shiny red ball near old tree and smiled".split()
FIRST_TWO = ["v1_5r2_sample-0000.json.gz", "v1_5r2_sample-0001.json.gz"]
def make_shard(index: int, docs: int) -> bytes:
    rng = random.Random(index)
    records = [{"id": f"doc-{index}-{n}", "text": " ".join(rng.choices(WORDS, k=200)), "source": "fake-dolma"}
               for n in range(docs)]
    lines = [json.dumps(r) for r in records]
    return gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)

def range_start(header: str | None) -> int:
    return int(header.removeprefix("bytes=").split("-")[0]) if header else 0

class ShardHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def do_HEAD(self):
        self.respond(send_body=False)
    def do_GET(self):
        self.respond(send_body=True)
    def respond(self, send_body: bool):
        server = self.server
        server.requests.append((self.command, self.path, self.headers.get("Range")))
        body = server.files.get(self.path)
        if body is None:
            return self.send_error(404)
        start = 0 if self.path in server.ignore_range else range_start(self.headers.get("Range"))
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        if send_body:
            self.wfile.write(payload[: len(payload) // 2] if self.path in server.short else payload)

@pytest.fixture
def shard_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ShardHandler)
    server.files = {f"/dolma-v1_6-8B-sample/v1_5r2_sample-{i:04d}.json.gz": make_shard(i, 10 + 10 * i)
                    for i in range(3)}
    server.requests, server.short, server.ignore_range = [], set(), set()
    server.base = f"http://127.0.0.1:{server.server_port}"
    server.urls = [server.base + path for path in server.files]
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()

@pytest.fixture
def online(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")

def shard_body(server, url: str) -> bytes:
    return server.files[url.removeprefix(server.base)]

def test_plan_by_shard_count():
    urls = ["u0", "u1", "u2"]
    assert plan_shards(urls, [10, 20, 30], shards=2) == [("u0", 10), ("u1", 20)]
    assert plan_shards(urls, [10, 20, 30], shards=0) == [("u0", 10), ("u1", 20), ("u2", 30)]

def test_plan_by_byte_budget_stops_before_exceeding_and_sizes_lazily():
    asked = []
    def sizes():
        for size in (10, 20, 30, 40):
            asked.append(size)
            yield size
    assert plan_shards(["u0", "u1", "u2", "u3"], sizes(), shards=0, max_bytes=35) == [("u0", 10), ("u1", 20)]
    assert asked == [10, 20, 30]
    assert plan_shards(["u0", "u1"], [10, 20], shards=1, max_bytes=100) == [("u0", 10)]
    assert plan_shards(["u0"], [10], shards=0, max_bytes=5) == []

def test_remote_size_reads_content_length(shard_server):
    assert [remote_size(url) for url in shard_server.urls] == [len(body) for body in shard_server.files.values()]

def test_full_download_is_size_checked_gzip_json_lines(shard_server, tmp_path):
    url = shard_server.urls[1]
    out = tmp_path / "dolma" / "v1_5r2_sample-0001.json.gz"
    assert download(url, out, remote_size(url)) == "downloaded"
    assert out.read_bytes() == shard_body(shard_server, url) and not out.with_name(out.name + ".part").exists()
    docs = [json.loads(line) for line in gzip.decompress(out.read_bytes()).decode().splitlines()]
    assert len(docs) == 20 and set(docs[0]) == {"id", "text", "source"}

def test_resume_from_part_sends_range_and_gives_identical_bytes(shard_server, tmp_path):
    url = shard_server.urls[2]
    body = shard_body(shard_server, url)
    out = tmp_path / "v1_5r2_sample-0002.json.gz"
    out.with_name(out.name + ".part").write_bytes(body[:1000])
    assert download(url, out, len(body)) == "downloaded"
    assert ("GET", url.removeprefix(shard_server.base), "bytes=1000-") in shard_server.requests
    assert out.read_bytes() == body

def test_server_ignoring_range_restarts_from_scratch(shard_server, tmp_path):
    url = shard_server.urls[2]
    shard_server.ignore_range.add(url.removeprefix(shard_server.base))
    out = tmp_path / "v1_5r2_sample-0002.json.gz"
    out.with_name(out.name + ".part").write_bytes(b"stale bytes that must not survive")
    assert download(url, out, len(shard_body(shard_server, url))) == "downloaded"
    assert out.read_bytes() == shard_body(shard_server, url)

def test_complete_file_is_skipped_without_get(shard_server, tmp_path, online):
    first = fetch_dolma_shards(shard_server.urls, tmp_path, shards=2)
    assert len(first["downloaded"]) == 2 and first["skipped"] == [] and first["bytes"] == first["total_bytes"] > 0
    shard_server.requests.clear()
    second = fetch_dolma_shards(shard_server.urls, tmp_path, shards=2)
    assert second["downloaded"] == [] and second["skipped"] == first["downloaded"] and second["bytes"] == 0
    assert {method for method, _, _ in shard_server.requests} == {"HEAD"}

def test_short_body_names_the_file_and_leaves_no_final_file(shard_server, tmp_path):
    url = shard_server.urls[0]
    shard_server.short.add(url.removeprefix(shard_server.base))
    out = tmp_path / "v1_5r2_sample-0000.json.gz"
    with pytest.raises(FetchError, match="v1_5r2_sample-0000.json.gz") as caught:
        download(url, out, remote_size(url))
    assert "expected" in str(caught.value) and not out.exists()

def test_url_list_file_and_byte_budget(shard_server, tmp_path, online):
    url_list = tmp_path / "v1_6-sample.txt"
    url_list.write_text("\n".join(shard_server.urls) + "\n\n")
    sizes = [len(body) for body in shard_server.files.values()]
    summary = fetch_dolma_shards(read_url_list(url_list), tmp_path / "dolma", shards=0, max_bytes=sizes[0] + sizes[1])
    assert sorted(Path(f).name for f in summary["downloaded"]) == FIRST_TWO
    assert summary["bytes"] == sizes[0] + sizes[1]

def fake_hub(shard_server, calls: list):
    def hf_hub_download(repo_id, filename, repo_type, revision, local_dir, **kwargs):
        calls.append((repo_id, filename, repo_type, revision))
        path = Path(local_dir) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(shard_server.urls) if repo_id == "allenai/dolma" else "Once upon a time.\n")
        return str(path)
    return hf_hub_download

def test_fetch_data_end_to_end_hub_mocked(shard_server, tmp_path, online, monkeypatch):
    calls = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_hub(shard_server, calls))
    monkeypatch.setattr(constants, "ENDPOINT", shard_server.base)
    p = FetchDataParams(dolma_shards=2)
    summary = fetch_data(p, tmp_path / p.dest)
    assert calls == [("allenai/dolma", p.dolma_url_list, "dataset", p.dolma_revision),
                     ("roneneldan/TinyStories", p.tinystories_files[0], "dataset", p.tinystories_revision)]
    raw = tmp_path / "data/raw"
    assert sorted(f.name for f in (raw / "dolma").glob("*.json.gz")) == FIRST_TWO
    assert (raw / "tinystories" / p.tinystories_files[0]).exists() and len(summary["downloaded"]) == 3
    assert fetch_data(p, tmp_path / p.dest, what=("dolma",))["downloaded"] == []

def no_hub(*args, **kwargs):
    raise AssertionError("the hub must not be contacted after a failed preflight")

def test_offline_env_fails_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    with pytest.raises(FetchError) as caught:
        fetch_data(FetchDataParams(), tmp_path / "data/raw")
    message = str(caught.value)
    assert message.startswith("fetch-data:") and "\n" not in message and "HF_HUB_OFFLINE is set" in message
    assert "data/raw/dolma/" in message and "data/raw/tinystories/" in message

def test_unreachable_endpoint_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_hub)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch_data(FetchDataParams(), tmp_path / "data/raw", what=("tinystories",))
    message = str(caught.value)
    assert time.monotonic() - started < 5 and message.startswith("fetch-data:") and "\n" not in message
    assert "127.0.0.1 unreachable" in message and "data/raw/tinystories/" in message and "dolma" not in message

def test_unreachable_shard_host_fails_fast(tmp_path, online):
    with pytest.raises(FetchError, match=r"^fetch-data: cannot reach the Dolma shard host .*127\.0\.0\.1 unreachable"):
        fetch_dolma_shards(["http://127.0.0.1:9/v1_5r2_sample-0000.json.gz"], tmp_path / "dolma")
