# Batched serving throughput: a live `hildanext serve` (its own process, on a free loopback port) on a model
# folder gets the same completion requests (mixed-length story openings, greedy) one at a time (the baseline),
# then at each concurrency (threads with the official openai client on /v1/completions): requests/s, tokens/s,
# p50/p95 latency and their ratios to one at a time; then the AR base (serve.engine=ar) the same way. Prints a
# markdown table, writes JSON. Usage: python benchmarks/batch_throughput.py [--model models/export]
#   [--ar-model models/demo-base|""] [--concurrency 1 4 8 16] [--requests 32] [--device cpu|cuda] [--set k=v]
import argparse, contextlib, json, math, platform, socket, statistics, subprocess, sys, tempfile, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx, openai, torch, yaml
from hildanext.config import Params, apply_overrides, as_dict, validate
from hildanext.data.demo_corpus import demo_stories
from timing import markdown_table
COLUMNS = ["engine", "concurrent", "requests", "ok", "failed", "tokens", "seconds", "requests_per_s", "tokens_per_s",
           "p50_s", "p95_s", "tokens_per_s_vs_1", "p50_vs_1"]
class Server:
    """`hildanext serve` on params(written to a temporary params file) in its own process, on a free loopback port."""
    def __init__(self, params: Params):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.folder = tempfile.TemporaryDirectory()
        self.params = Path(self.folder.name) / "params.yaml"
        self.params.write_text(yaml.safe_dump(as_dict(params)))
        self.url, self.log = f"http://127.0.0.1:{self.port}", Path(self.folder.name) / "serve.log"
    def __enter__(self):
        command = [sys.executable, "-m", "hildanext", "serve", "--params", str(self.params), "--port", str(self.port)]
        self.process = subprocess.Popen(command, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 300
        while self.process.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/health", timeout=5).status_code == 200:
                    return self
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(f"hildanext serve did not start: {self.log.read_text()[-2000:]}")
    def __exit__(self, *exc):
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.folder.cleanup()

def server_params(folder: Path, engine: str, args) -> Params:
    """The params default with the folder as the only model candidate, the engine, the device and --set items."""
    cuda = args.device == "cuda"
    items = [f"serve.model_candidates=[{folder.resolve()}]", f"serve.engine={engine}", f"runtime.device={args.device}",
             f"runtime.cuda_graphs={str(cuda).lower()}", *args.set]
    return validate(apply_overrides(as_dict(Params()), items), "batch_throughput params")

def openings(count: int, seed: int = 0) -> list[str]:
    """count story openings of 4 to 24 words (mixed prompt lengths), the same in every run."""
    stories = demo_stories(count, seed)
    return [" ".join(story.split()[: 4 + (5 * i) % 21]) for i, story in enumerate(stories)]

def send(client, prompt: str, max_tokens: int) -> tuple[float, int] | None:
    """(latency in seconds, completion tokens) of one greedy completion; None when it failed after the retries."""
    started = time.perf_counter()
    try:
        out = client.completions.create(model="hildanext", prompt=prompt, max_tokens=max_tokens, temperature=0)
    except openai.APIError:
        return None
    return time.perf_counter() - started, out.usage.completion_tokens

def percentile(values: list[float], share: float) -> float | None:
    """The nearest-rank percentile (None for no values)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)] if ordered else None

def measure(client, prompts: list[str], concurrent: int, max_tokens: int) -> dict:
    """The prompts sent with `concurrent` in flight at a time: counts, wall-clock rates and latency percentiles."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        done = list(pool.map(lambda p: send(client, p, max_tokens), prompts))
    seconds = time.perf_counter() - started
    ok = [d for d in done if d is not None]
    tokens, latencies = sum(t for _, t in ok), [s for s, _ in ok]
    return {"concurrent": concurrent, "requests": len(prompts), "ok": len(ok), "failed": len(done) - len(ok),
            "tokens": tokens, "seconds": seconds, "requests_per_s": len(ok) / seconds, "tokens_per_s": tokens / seconds,
            "p50_s": statistics.median(latencies) if latencies else None, "p95_s": percentile(latencies, 0.95)}

def engine_rows(label: str, params: Params, prompts: list[str], args) -> list[dict]:
    """One server on the folder: a warm-up, the one-at-a-time baseline, then each concurrency; ratios to the first."""
    with Server(params) as server:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="none", max_retries=args.retries, timeout=600)
        measure(client, prompts[: args.warmup], 1, args.max_tokens)
        rows = [measure(client, prompts, c, args.max_tokens) for c in dict.fromkeys([1, *args.concurrency])]
        health = httpx.get(f"{server.url}/health", timeout=60).json()
    one = rows[0]
    for row in rows:
        row["engine"], row["served"], row["device"] = label, health["engine"], health["device"]
        row["tokens_per_s_vs_1"] = row["tokens_per_s"] / one["tokens_per_s"] if one["tokens_per_s"] else None
        row["p50_vs_1"] = row["p50_s"] / one["p50_s"] if row["p50_s"] and one["p50_s"] else None
    return rows

def cell(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)

def parse_args(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path, default=Path("models/export"))
    parser.add_argument("--ar-model", default="models/demo-base", help='the AR base folder ("" skips it)')
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--retries", type=int, default=6, help="openai client max_retries (honours Retry-After)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--set", action="append", default=[], help="a params override key=value (repeatable)")
    parser.add_argument("--out", type=Path, default=Path("metrics/bench_batch_throughput.json"))
    return parser.parse_args(argv)

def main(argv=None) -> dict:
    args = parse_args(argv)
    prompts = openings(args.requests)
    rows = engine_rows("diffusion", server_params(args.model, "diffusion", args), prompts, args)
    if args.ar_model:
        rows += engine_rows("ar", server_params(Path(args.ar_model), "ar", args), prompts, args)
    cpu = f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else cpu
    report = {"device": device, "torch": torch.__version__, "model": str(args.model), "ar_model": args.ar_model,
              "requests": args.requests, "max_tokens": args.max_tokens, "overrides": args.set, "rows": rows}
    report["table"] = markdown_table(COLUMNS, [[cell(row[k]) for k in COLUMNS] for row in rows])
    print(report["table"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    return report

if __name__ == "__main__":
    main()
