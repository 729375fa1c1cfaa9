# The live view on the server's dummy model (the demo architecture, seeded random weights, sampled
# at temperature 0.8 with a fixed seed): the SSE stream's answer equals /generate's, S mode shows edits, the
# page and its files are served, bad queries get 4xx, and headless Chromium (Debian's chromium) loads the
# page on loopback, runs a prompt and shows the generated text in the DOM (skipped only without chromium).
import json, shutil, subprocess
import httpx, pytest
from hildanext.serve.app import create_app
from test_serve import LiveServer, make_params
SETTINGS = {"prompt": "Once upon a time", "mode": "S", "max_new_tokens": 40, "seed": 1, "temperature": 0.8}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
@pytest.fixture(scope="module")
def server(tmp_path_factory):
    missing = tmp_path_factory.mktemp("none") / "no-model"
    with LiveServer(create_app(make_params(missing))) as live:
        yield live

def events(server, **query) -> list[tuple[str, dict]]:
    out, name = [], None
    with httpx.stream("GET", f"{server.url}/live/stream", params=query, timeout=120) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                out.append((name, json.loads(line[6:])))
    return out

def test_stream_matches_generate_and_shows_edits(server):
    assert httpx.get(f"{server.url}/health").json()["model"] == "dummy"
    stream = events(server, **SETTINGS)
    names = [n for n, _ in stream]
    assert names[0] == "start" and names[-1] == "done" and set(names[1:-1]) == {"pass"}
    reference = httpx.post(f"{server.url}/generate", json=SETTINGS, timeout=120).json()
    done = stream[-1][1]
    assert done["text"] == reference["text"]
    assert done["stats"]["forwards"] == reference["stats"]["forwards"] == len(names) - 2
    passes = [d for n, d in stream if n == "pass"]
    assert sum(len(p["edited"]) for p in passes) >= 1
    assert all(set(e) == {"i", "old", "new"} for p in passes for e in p["edited"])
    decided = {u["i"] for p in passes for u in p["unmasked"]}
    assert passes[-1]["tpf"] == pytest.approx(len(decided) / (passes[-1]["forwards"] + passes[-1]["refreshes"]))
    stats = done["stats"]
    assert stats["tpf"] == pytest.approx(stats["tokens"] / (len(names) - 2 + stats["refreshes"]))
    assert decided <= set(range(SETTINGS['max_new_tokens']))

def test_page_files_and_bad_queries(server):
    page = httpx.get(f"{server.url}/live")
    assert page.status_code == 200 and "/live/static/live.js" in page.text and "cdn" not in page.text.lower()
    assert httpx.get(f"{server.url}/live/static/live.css").headers["content-type"].startswith("text/css")
    assert httpx.get(f"{server.url}/live/static/secret.py").status_code == 404
    assert httpx.get(f"{server.url}/live/stream", params={"prompt": "x", "mode": "Z"}).status_code == 422
    assert httpx.get(f"{server.url}/live/stream", params={"prompt": "x", "tau_mask": 2}).status_code == 422

def test_headless_chromium_shows_the_generated_text(server, tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed here (.ci/run installs it)")
    reference = httpx.post(f"{server.url}/generate", json=SETTINGS, timeout=120).json()["text"]
    url = f"{server.url}/live?autorun=1&" + "&".join(f"{k}={v}" for k, v in SETTINGS.items()).replace(" ", "%20")
    command = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=60000",
               "--dump-dom", url]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=180).stdout
    answer = dom.split('<pre id="answer">', 1)[1].split("</pre>", 1)[0]
    assert reference.strip()
    assert answer.strip() == reference.strip().replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert 'class="slot' in dom and "TPF" in dom
