# A fake dInfer worker for tests/test_dinfer.py: it speaks hildanext's worker protocol (JSON lines) with canned
# replies, standing in for dinfer_worker.py inside a dInfer environment, which cannot exist here (no vLLM, no CUDA).
# Usage: fake_worker.py MODE WORKER_PATH; MODE is ok, crash (dies on generate), hang (never answers hello), cc61
# (a Pascal GPU), novllm (vLLM missing) or garbled (a generate reply without ids). Messages go to $FAKE_DINFER_LOG.
import json, os, sys, time
HELLO = {"op": "hello", "protocol": 1, "python": "3.11.7", "torch": "2.8.0", "transformers": "4.57.6", "dinfer": "0.1",
         "vllm": "0.10.2", "cuda": True, "capability": [9, 0], "device": "fake H100", "errors": {}}
def hello(mode: str) -> dict:
    if mode == "hang":
        time.sleep(60)
    if mode == "cc61":
        return HELLO | {"capability": [6, 1], "device": "fake GTX 1080"}
    if mode == "novllm":
        return HELLO | {"vllm": None, "dinfer": None,
                        "errors": {"vllm": "ModuleNotFoundError: No module named 'vllm'",
                                   "dinfer": "ModuleNotFoundError: No module named 'vllm'"}}
    return HELLO

def generate(message: dict, mode: str) -> dict:
    if mode == "crash":
        print("RuntimeError: CUDA error: device-side assert triggered", file=sys.stderr, flush=True)
        sys.exit(3)
    if mode == "garbled":
        return {"op": "generate", "id": message["id"], "forwards": 1}
    prompt, eos = message["prompt_ids"], message["eos_id"]
    trace = [[0, 0, 2, [[0, prompt[0]], [1, prompt[1]]]], [0, 1, 0, [[2, prompt[2]], [3, eos]]]]
    return {"op": "generate", "id": message["id"], "ids": prompt[:3] + [eos, 7, 7], "forwards": 5, "passes": 2,
            "seconds": 0.25, "trace": trace, "notes": []}

def reply(message: dict, mode: str) -> dict:
    if message["op"] == "hello":
        return hello(mode)
    if message["op"] == "load":
        return {"op": "load", "ok": True, "device": "cuda:0", "seconds": 0.1}
    return generate(message, mode) if message["op"] == "generate" else {"op": message["op"]}

def main() -> None:
    mode, log = sys.argv[1], os.environ.get("FAKE_DINFER_LOG")
    print("INFO a library banner on stdout, which the engine must skip", flush=True)
    for line in sys.stdin:
        message = json.loads(line)
        if log:
            with open(log, "a") as f:
                f.write(json.dumps({"argv": sys.argv[2:], **message}) + "\n")
        print(json.dumps(reply(message, mode)), flush=True)
        if message["op"] == "quit":
            break

if __name__ == "__main__":
    main()
