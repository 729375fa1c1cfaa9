# DInferEngine ("dinfer"): M2T-only decoding by dInfer's BlockDiffusionLLM in a subprocess (DInferProcess:
# params.dinfer.python runs dinfer_worker.py by path) over JSON lines on stdin/stdout (hello, load, generate, quit;
# DESIGN.md, dInfer engine). Capability checks (python present, dinfer and vLLM importable there, CUDA capability
# >= min) run before first use; any failure or timeout switches the engine to DiffusionEngine for good with ONE
# warning, plus a notice on each Completion it serves. Editing requests (tau_edit < 1) and shift folders are ours.
import json, logging, queue, shutil, subprocess, threading, time, warnings, weakref
from collections import deque
from pathlib import Path
from hildanext.decode.decoder import DecodeResult, PassRecord, cut_at_stop, decode_stats
from hildanext.decode.engines import Completion, DiffusionEngine, Engine, Prepared
from hildanext.decode.settings import EXACT, DecodeSettings
WORKER = Path(__file__).with_name("dinfer_worker.py")
PROTOCOL = 1
DEVICE = "cuda"
SERVED = "so the diffusion engine served it"
log = logging.getLogger(__name__)
class DInferError(RuntimeError):
    pass

def pump(stream, sink, eof: bool = False) -> None:
    with stream:
        for line in stream:
            sink(line.rstrip("\n"))
    if eof:
        sink(None)

def parse(line: str):
    try:
        reply = json.loads(line)
    except json.JSONDecodeError:
        return None
    return reply if isinstance(reply, dict) else None

class DInferProcess:
    """One dinfer_worker.py subprocess; ask(message) sends a line and waits timeout_s for the reply line."""
    def __init__(self, python: str, timeout_s: float, worker: Path = WORKER):
        self.timeout_s, self.errors, self.lines = timeout_s, deque(maxlen=20), queue.Queue()
        self.proc = subprocess.Popen([python, str(worker)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.pumps = [threading.Thread(target=pump, args=(self.proc.stdout, self.lines.put, True), daemon=True)]
        self.pumps.append(threading.Thread(target=pump, args=(self.proc.stderr, self.errors.append), daemon=True))
        for thread in self.pumps:
            thread.start()
    def died(self, what: str) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            code = None
        self.pumps[1].join(timeout=2)
        last = next((line for line in reversed(self.errors) if line.strip()), "no stderr")
        return f"worker {what} (exit code {code}): {last}"
    def ask(self, message: dict) -> dict:
        try:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        except OSError as e:
            raise DInferError(self.died(f"did not take {message['op']} ({e})")) from None
        deadline = time.monotonic() + self.timeout_s
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                why = f"worker gave no answer to {message['op']} within {self.timeout_s:g} s (dinfer.timeout_s)"
                raise DInferError(why) from None
            if line is None:
                raise DInferError(self.died(f"exited during {message['op']}"))
            reply = parse(line)
            if reply is not None and reply.get("op") == message["op"] and reply.get("id") == message.get("id"):
                if "error" in reply:
                    raise DInferError(f"worker failed on {message['op']}: {reply['error']}")
                return reply
    def close(self, graceful: bool = True) -> None:
        """Send quit and wait a little (graceful), else kill; the worker also exits when its stdin closes."""
        try:
            if graceful and self.proc.poll() is None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for thread in self.pumps:
            thread.join(timeout=2)
        if not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass

def capability_problem(hello: dict, python: str, min_cc: float) -> str | None:
    """Why the worker's environment cannot serve (None when it can), from its hello reply."""
    if hello.get("protocol") != PROTOCOL:
        return f"the worker speaks protocol {hello.get('protocol')}, not {PROTOCOL}"
    missing = [name for name in ("dinfer", "vllm") if not hello.get(name)]
    if missing:
        why = "; ".join(f"{name}: {hello.get('errors', {}).get(name, 'not found')}" for name in missing)
        return f"{' and '.join(missing)} not importable by {python} ({why})"
    cap = hello.get("capability")
    if not cap:
        return f"no CUDA device visible to {python}"
    if cap[0] + cap[1] / 10 < min_cc:
        device = f"{cap[0]}.{cap[1]} of {hello.get('device')}"
        return f"CUDA compute capability {device} is below dinfer.min_compute_capability {min_cc:g}"
    return None

def unsupported(s: DecodeSettings) -> str | None:
    """Why dInfer cannot serve these decode settings (None when it can)."""
    if s.shift:
        return f"the folder uses token shift: dInfer's BlockDiffusionLLM has none, {SERVED}"
    if s.remask is not None:
        return f"the remask pass is on: dInfer has none, {SERVED}"
    if s.tau_edit < 1.0:
        return f"editing is on (tau_edit {s.tau_edit:g} < 1): dInfer has no token editing, {SERVED}"
    if s.temperature > 0 and (s.top_k is not None or s.top_p is not None):
        return f"top_k/top_p sampling: dInfer's threshold decoder has no such filter, {SERVED}"
    if policies := sorted(k for k, official in EXACT.items() if getattr(s, k) != official):
        return f"decode policies {', '.join(policies)} are on: dInfer's threshold decoder has none, {SERVED}"
    return None

class DInferEngine(Engine):
    """dInfer for M2T-only requests; our DiffusionEngine for editing requests and whenever dInfer cannot serve."""
    name = "dinfer"
    def __init__(self, model, tokenizer, params, model_dir: Path | None = None, info=None):
        super().__init__(model, tokenizer, params, model_dir, info)
        self.fallback = DiffusionEngine(model, tokenizer, params, model_dir, self.info)
        self.process: DInferProcess | None = None
        self.broken: str | None = None
        self.served_by, self.requests = self.name, 0
    def run(self, prepared: Prepared, observer=None) -> Completion:
        completion = super().run(prepared, observer)
        completion.engine = self.served_by
        return completion
    def decode(self, prepared: Prepared, observer) -> tuple[DecodeResult, list[str]]:
        reason = unsupported(prepared.settings)
        if reason is not None:
            log.info("dinfer: %s", reason)
            return self.by_fallback(prepared, observer, reason)
        if not self.ready():
            return self.by_fallback(prepared, observer, f"dinfer unavailable, {SERVED}: {self.broken}")
        try:
            reply = self.process.ask(self.message(prepared))
            result = self.result(reply, prepared.settings)
        except DInferError as e:
            return self.failed(str(e), prepared, observer)
        except (KeyError, TypeError, ValueError) as e:
            why = f"malformed generate reply from the worker ({e.__class__.__name__}: {e})"
            return self.failed(why, prepared, observer)
        self.served_by = self.name
        replay(observer, result.trace, result.ids, len(prepared.prompt_ids), prepared.settings.block_size)
        return result, [str(note) for note in reply.get("notes", [])]
    def failed(self, reason: str, prepared: Prepared, observer) -> tuple[DecodeResult, list[str]]:
        self.fail(reason)
        return self.by_fallback(prepared, observer, f"dinfer failed, {SERVED}: {self.broken}")
    def by_fallback(self, prepared: Prepared, observer, notice: str) -> tuple[DecodeResult, list[str]]:
        result, notices = self.fallback.decode(prepared, observer)
        self.served_by = self.fallback.name
        return result, [notice, *notices]
    def ready(self) -> bool:
        """Start the process and run the capability checks once; False (after one warning) when it cannot serve."""
        if self.process is None and self.broken is None:
            try:
                self.process = self.start()
                weakref.finalize(self, self.process.close)
            except DInferError as e:
                self.fail(str(e))
        return self.process is not None
    def start(self) -> DInferProcess:
        cfg = self.params.dinfer
        python = shutil.which(cfg.python)
        if python is None:
            raise DInferError(f"dinfer.python {cfg.python} is not an executable (README: dInfer engine (optional))")
        if self.model_dir is None:
            raise DInferError("no model folder to hand to the worker")
        process = DInferProcess(python, cfg.timeout_s)
        try:
            problem = capability_problem(process.ask({"op": "hello"}), cfg.python, cfg.min_compute_capability)
            if problem is not None:
                raise DInferError(problem)
            runtime = self.params.runtime
            process.ask({"op": "load", "model_dir": str(Path(self.model_dir).resolve()), "dtype": runtime.dtype,
                         "device": DEVICE, "attn_implementation": runtime.attn_implementation})
        except DInferError:
            process.close(graceful=False)
            raise
        return process
    def fail(self, reason: str) -> None:
        self.broken = reason
        warnings.warn(f"dinfer engine falls back to the diffusion engine: {reason}", RuntimeWarning, stacklevel=2)
        if self.process is not None:
            self.process.close(graceful=False)
            self.process = None
    def close(self) -> None:
        if self.process is not None:
            self.process.close()
            self.process = None
    def message(self, prepared: Prepared) -> dict:
        self.requests += 1
        s, ids = prepared.settings, self.special
        fields = {"prompt_ids": list(prepared.prompt_ids), "max_new_tokens": s.max_new_tokens,
                  "block_size": s.block_size, "threshold": s.tau_mask, "temperature": s.temperature, "seed": s.seed}
        fields |= {"mask_id": ids.mask_id, "eos_id": ids.eos_id, "stop_ids": list(ids.stop_ids),
                   "suppress_ids": list(ids.banned_ids), "early_stop": s.eos_early_stop}
        return {"op": "generate", "id": f"r{self.requests}", **fields}
    def result(self, reply: dict, s: DecodeSettings) -> DecodeResult:
        """The reply as a DecodeResult: ids cut after the first stop, trace, counts (forwards - passes: prefill)."""
        ids = cut_at_stop([int(t) for t in reply["ids"]][: s.max_new_tokens], set(self.special.stops))
        trace = [PassRecord(int(b), int(step), int(left), [(int(i), int(t)) for i, t in unmasked], [])
                 for b, step, left, unmasked in reply.get("trace", [])]
        forwards = int(reply["forwards"])
        passes = int(reply.get("passes", forwards))
        stats = decode_stats(passes, len(ids), float(reply["seconds"]), 0, max(forwards - passes, 0))
        return DecodeResult(ids, trace, stats)

def replay(observer, trace: list[PassRecord], ids: list[int], prompt_len: int, block_size: int) -> None:
    """The observer events of a finished dInfer decode (the worker reports after the fact, not live)."""
    if observer is None:
        return
    for i, record in enumerate(trace):
        observer({"type": "pass", "record": record, "forwards": i + 1})
        if i + 1 == len(trace) or trace[i + 1].block != record.block:
            done = max((record.block + 1) * block_size - prompt_len, 0)
            observer({"type": "block", "block": record.block, "ids": ids[:done]})
