# The micro HumanEval harness: the shipped tasks are well formed, the self-test holds (references pass, wrong
# bodies fail, a loop times out, a memory bomb is memory, the network is blocked), evaluate counts each status,
# limits and the temporary folder apply inside the child, a listening local server is unreachable from the sandbox,
# extract_body's truncation rules, and a tiny random Qwen3 through both engines yields a full report (one torch
# thread there: tiny matmuls on a busy 2-core machine are far slower with more).
import socket
import pytest
import torch
from transformers import AutoTokenizer
from conftest import make_tiny_qwen3
from hildanext.eval.codeeval import STATUSES, STOP_STRINGS, code_request, complete_tasks, evaluate, extract_body
from hildanext.eval.codeeval import harness_self_test, listening_port, load_tasks, network_isolation, run_program
from hildanext.config import DecodeParams, Params
from hildanext.decode.ar import AREngine
from hildanext.decode.engines import DiffusionEngine
from hildanext.model import add_mask_token
PROMPT = 'def add(a: int, b: int) -> int:\n    """Return a + b."""\n'
CHECK = "def check(candidate):\n    assert candidate() == 'ok'\n"
PROBE = ("import socket\ndef probe(port):\n    try:\n"
         "        socket.create_connection(('127.0.0.1', port), timeout=1).close()\n"
         "    except OSError:\n        return 'blocked'\n    return 'connected'\n")
def test_tasks_are_well_formed():
    tasks = load_tasks()
    assert len(tasks) >= 12 and len({t.task_id for t in tasks}) == len(tasks)
    for t in tasks:
        assert t.prompt.startswith(f"def {t.entry_point}(") and t.prompt.endswith('"""\n')
        assert t.tests.startswith("def check(candidate):") and t.reference.startswith("    ")

def test_harness_self_test():
    report = harness_self_test(timeout_s=2.0, memory_mb=256)
    n = len(load_tasks())
    assert report["reference"] == {"passed": n} and report["wrong"] == {"failed": n}
    assert report["cases"] == {"loop": "timeout", "memory": "memory", "network": "passed"} and report["ok"]
    assert report["isolation"] == network_isolation()

def test_evaluate_counts_each_status():
    tasks = load_tasks()[:6]
    bodies = [tasks[0].reference, tasks[1].wrong, "    while True:\n        pass\n", "    return bytearray(1 << 32)\n",
              "    return (\n", "    import os\n    os._exit(0)\n"]
    report = evaluate({t.task_id: b for t, b in zip(tasks, bodies, strict=True)}, tasks, timeout_s=1.5, memory_mb=256)
    assert report["counts"] == {"passed": 1, "failed": 1, "timeout": 1, "memory": 1, "error": 2}
    assert report["tasks"] == 6 and report["pass@1"] == pytest.approx(1 / 6)
    results = list(report["results"].values())
    assert results[2]["seconds"] < 3.0 and "wall clock" in results[2]["detail"]
    assert "SyntaxError" in results[4]["detail"] and "before the tests finished" in results[5]["detail"]

def test_limits_and_folder_inside_the_child():
    program = ("import os, resource\ndef f():\n    return os.getcwd(), resource.getrlimit(resource.RLIMIT_AS), "
               "resource.getrlimit(resource.RLIMIT_CORE)\n")
    tests = ("def check(candidate):\n    cwd, memory, core = candidate()\n"
             "    assert 'hildanext-code-' in cwd and memory == (300 << 20, 300 << 20) and core == (0, 0)\n")
    assert run_program(program, tests, "f", memory_mb=300).status == "passed"
    assert run_program("def f():\n    return 'ok'\n", CHECK, "g").status == "error"
    assert run_program("import sys\nsys.exit(0)\ndef f():\n    return 'ok'\n", CHECK, "f").status == "error"

@pytest.mark.parametrize("isolation", ["sockets", None])
def test_network_is_blocked(isolation):
    with listening_port() as port:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        tests = f"def check(candidate):\n    assert candidate({port}) == 'blocked'\n"
        assert run_program(PROBE, tests, "probe", isolation="none").status == "failed"
        result = run_program(PROBE, tests, "probe", isolation=isolation)
    assert result.status == "passed" and result.isolation == (isolation or network_isolation())

@pytest.mark.parametrize("completion, body", [
    ("    return a + b\n\n\ndef test():\n    assert add(1, 2) == 3\n", "    return a + b\n\n\n"),
    ("    return a + b\nif __name__ == '__main__':\n    print(add(1, 2))\n", "    return a + b\n"),
    ("    return a + b\nprint(add(1, 2))\n", "    return a + b\n"),
    ("    def inner(x):\n        return x\n    return inner(a) + b\nclass Extra:\n    pass\n",
     "    def inner(x):\n        return x\n    return inner(a) + b\n"),
    ("```python\n    return a + b\n```\nThis adds the numbers.", "    return a + b\n"),
    ("    return a + b\n```\n\ndef more():\n", "    return a + b\n"),
    ("```python\nimport math\ndef add(a, b):\n    return a + b\n```",
     "import math\ndef add(a, b):\n    return a + b\n"),
    ("    return a + b\ndef add(a, b):\n    return 0\n", "    return a + b\n"),
])
def test_extract_body_truncation(completion, body):
    assert extract_body(PROMPT, completion) == PROMPT + body

@pytest.fixture(scope="module")
def tiny_engines(qwen3_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    model = make_tiny_qwen3(vocab_size=151936, seed=11)
    add_mask_token(model, tokenizer)
    params, threads = Params(decode=DecodeParams(block_size=4, max_post_steps=0)), torch.get_num_threads()
    torch.set_num_threads(1)
    yield DiffusionEngine(model, tokenizer, params), AREngine(model, tokenizer, params)
    torch.set_num_threads(threads)

@pytest.mark.parametrize("which", [0, 1])
def test_tiny_engine_run_produces_a_report(tiny_engines, which):
    tasks = load_tasks()
    completions = complete_tasks(tiny_engines[which], code_request(mode=None, max_new_tokens=4), tasks)
    assert set(completions) == {t.task_id for t in tasks}
    assert not any(s in text for text in completions.values() for s in STOP_STRINGS)
    report = evaluate(completions, tasks, timeout_s=2.0, memory_mb=256)
    assert set(report["results"]) == set(completions) and sum(report["counts"].values()) == len(tasks)
    assert all(r["status"] in STATUSES and r["isolation"] == network_isolation() for r in report["results"].values())
    assert 0.0 <= report["pass@1"] <= 1.0 and set(report["counts"]) == set(STATUSES)
