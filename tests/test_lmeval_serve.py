# lm-eval 0.4.13's own local-completions client against a live `hildanext serve` (uvicorn on loopback over the
# tiny saved Qwen3): a generate_until task from a local YAML, sent as batches of token-id prompts through the
# auto-detected remote tokenizer or as batches of texts, each answer what the server gives that prompt alone;
# the loglikelihood path, logprobs and echo get 400 naming the reason and `hildanext lm-eval --model hildanext`.
import json
import httpx, pytest, requests
from lm_eval import simple_evaluate
from lm_eval.models.utils import handle_stop_sequences
from lm_eval.tasks import TaskManager
from lm_eval.utils import RemoteTokenizer, check_remote_tokenizer_support
from transformers import AutoTokenizer
PROMPTS = ["Once upon a time, Lily", "The little dog", "Tom had a kite.", "One day, Sam", "The sun was"]
UNTIL, MAX_GEN, SEED, TEMPERATURE = [".", "\n\n"], 12, 1234, 0.3
NO_LOGPROBS = "a diffusion model has no per-token autoregressive logprobs"
POINTER = "hildanext lm-eval --model hildanext"
@pytest.fixture(scope="module")
def tokenizer(model_dir):
    return AutoTokenizer.from_pretrained(model_dir)

def completion(live, prompt, **extra) -> httpx.Response:
    body = {"prompt": prompt, "max_tokens": MAX_GEN, "temperature": TEMPERATURE, "seed": SEED} | extra
    return httpx.post(f"{live.url}/v1/completions", json=body, timeout=120)

def alone(live, tokenizer, prompt: str) -> str:
    """The server's answer to one text prompt with the stops lm-eval sends (the task's until plus EOS)."""
    out = completion(live, prompt, stop=handle_stop_sequences(list(UNTIL), tokenizer.eos_token)).json()
    return out["choices"][0]["text"]

def write_task(folder, name: str, rows: list[dict], output_type: str) -> None:
    data = folder / f"{name}.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    task = {"task": name, "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(data)}},
            "test_split": "test", "output_type": output_type, "doc_to_text": "{{prompt}}"}
    if output_type == "generate_until":
        task |= {"doc_to_target": "{{answer}}", "metric_list": [{"metric": "exact_match"}],
                 "generation_kwargs": {"until": UNTIL, "max_gen_toks": MAX_GEN, "do_sample": True,
                                                   "temperature": TEMPERATURE}}
    else:
        task |= {"doc_to_choice": "{{choices}}", "doc_to_target": "{{gold}}", "metric_list": [{"metric": "acc"}]}
    (folder / f"{name}.yaml").write_text(json.dumps(task))

def evaluate(folder, task: str, model_args: str, limit: int):
    manager = TaskManager(include_defaults=False, include_path=str(folder))
    return simple_evaluate(model="local-completions", model_args=model_args, tasks=[task], task_manager=manager,
                           limit=limit, log_samples=True, bootstrap_iters=0)

def test_remote_tokenizer_routes_match_the_server_tokenizer(live, tokenizer):
    assert check_remote_tokenizer_support(f"{live.url}/v1/completions")
    remote = RemoteTokenizer(f"{live.url}/v1/completions")
    ids = tokenizer(PROMPTS[0], add_special_tokens=False)["input_ids"]
    assert remote.encode(PROMPTS[0]) == ids and remote.decode(ids) == tokenizer.decode(ids)
    assert (remote.eos_token, remote.eos_token_id) == (tokenizer.eos_token, tokenizer.eos_token_id)
    assert remote.tokenizer_info["chat_template"] == tokenizer.chat_template
    r = httpx.post(f"{live.url}/detokenize", json={"tokens": [len(tokenizer) + 5]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "tokens"

def test_a_list_of_token_id_prompts_gets_one_choice_per_prompt(live, tokenizer):
    ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in PROMPTS[:3]]
    out = completion(live, ids).json()
    texts = [completion(live, p).json()["choices"][0]["text"] for p in PROMPTS[:3]]
    assert [(c["index"], c["text"]) for c in out["choices"]] == list(enumerate(texts))
    one = completion(live, ids[1]).json()
    assert one["choices"][0]["text"] == texts[1] and one["usage"]["prompt_tokens"] == len(ids[1])
    assert out["usage"]["prompt_tokens"] == sum(map(len, ids))
    words = completion(live, PROMPTS[:2]).json()
    assert [c["text"] for c in words["choices"]] == texts[:2]

@pytest.mark.parametrize("prompt, extra, status, field", [
    ([[1, 2], [10**6]], {}, 422, "prompt.1"),
    (["a", "b"], {"stream": True}, 422, "prompt"),
    (["a"] * 65, {}, 422, "prompt"),
    ([], {}, 422, "prompt"),
    ([[3, -1]], {}, 422, "prompt"),
    ([[3], "mixed"], {}, 422, "prompt"),
])
def test_bad_prompt_lists_get_422_naming_the_field(live, prompt, extra, status, field):
    r = completion(live, prompt, **extra)
    assert r.status_code == status, r.text
    assert r.json()["error"]["param"] == field and field in r.json()["error"]["message"]

@pytest.mark.parametrize("model_args", [
    "batch_size=2",
    "batch_size=2,tokenizer_backend=huggingface,tokenized_requests=False,tokenizer={model_dir}",
])
def test_lm_eval_generate_until_through_local_completions(live, tokenizer, model_dir, tmp_path, model_args):
    answers = [alone(live, tokenizer, p) for p in PROMPTS]
    assert len(set(answers)) == len(answers), answers
    rows = [{"prompt": p, "answer": answers[i] if i % 2 == 0 else "never said"} for i, p in enumerate(PROMPTS)]
    write_task(tmp_path, "story_gen", rows, "generate_until")
    args = f"base_url={live.url}/v1/completions,max_retries=1,max_length=256,seed={SEED}," + model_args
    out = evaluate(tmp_path, "story_gen", args.format(model_dir=model_dir), len(PROMPTS))
    samples = sorted(out["samples"]["story_gen"], key=lambda s: s["doc_id"])
    assert [s["resps"][0][0] for s in samples] == answers
    assert [s["doc"]["prompt"] for s in samples] == PROMPTS
    assert out["results"]["story_gen"]["exact_match,none"] == pytest.approx(3 / 5)

def test_lm_eval_loglikelihood_gets_400_naming_the_reason(live, tmp_path):
    rows = [{"prompt": "The dog ran to the", "choices": [" park", " moon"], "gold": 0}]
    write_task(tmp_path, "story_choice", rows, "multiple_choice")
    with pytest.raises(requests.HTTPError) as caught:
        evaluate(tmp_path, "story_choice", f"base_url={live.url}/v1/completions,max_retries=1", 1)
    response = caught.value.response
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert NO_LOGPROBS in error["message"] and POINTER in error["message"] and error["param"] == "logprobs"

@pytest.mark.parametrize("path, body, field", [
    ("/v1/completions", {"prompt": [[5, 6, 7]], "echo": True, "logprobs": 1, "max_tokens": 1}, "logprobs"),
    ("/v1/completions", {"prompt": "x", "logprobs": 0}, "logprobs"),
    ("/v1/completions", {"prompt": "x", "echo": True}, "echo"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, "logprobs"),
    ("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "top_logprobs": 2}, "top_logprobs"),
])
def test_logprobs_and_echo_get_400_pointing_to_the_native_model(live, path, body, field):
    r = httpx.post(f"{live.url}{path}", json=body, timeout=60)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["param"], error["type"], error["code"]) == (field, "invalid_request_error", 400)
    assert error["message"].startswith(f"{field}: ") and NO_LOGPROBS in error["message"] and POINTER in error["message"]
