# The dInfer engine with dInfer itself FAKED, because it cannot run here (no vLLM, no CUDA >= 8.0): (a) DInferEngine
# against fake workers (tests/fake_dinfer/fake_worker.py: canned replies, crash, hang, 6.1 GPU, no vLLM, garbage) ->
# served, or one warning + a notice + the same output as DiffusionEngine; editing and shift stay ours. (b) The
# real dinfer_worker.py against a fake `dinfer` (tests/fake_dinfer/dinfer.py: the pinned signatures, code paths
# transcribed from dInfer@fce4e32): constructor arguments, the forward convention mapped onto a tiny real Qwen3,
# and ids equal to our decoder's with editing off, in-process, over the protocol, and through DInferEngine.
import dataclasses, json, os, subprocess, sys, time, warnings
import pytest
import torch
from transformers import AutoTokenizer
from conftest import REPO, make_tiny_qwen3
from hildanext.decode import dinfer as engine_module
from hildanext.config import DInferParams, Params, apply_overrides, as_dict, validate
from hildanext.decode.decoder import BlockDecoder, Fill, PassAt, block_causal, generate_ids
from hildanext.decode.dinfer import DInferEngine
from hildanext.decode.engines import DiffusionEngine, Request, make_engine
from hildanext.decode.settings import DecodeSettings, SpecialIds
from hildanext.model import add_mask_token, masked_logits, model_meta, save_model
FAKES = REPO / "tests/fake_dinfer"
MASK, EOS = 127, 126
def lively(model, std: float = 1.0):
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, std)
    return model

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, qwen3_tokenizer_dir):
    root = tmp_path_factory.mktemp("dinfer")
    tok = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir, local_files_only=True)
    model = lively(make_tiny_qwen3(vocab_size=151936))
    add_mask_token(model, tok)
    return save_model(model, tok, root / "model", model_meta(tok, "test", None, 1, "h", "c0ffee"))

@pytest.fixture(scope="module")
def reference(model_dir):
    return make_engine("diffusion", model_dir, params_for("unused"))

def params_for(python, timeout_s: float = 20.0) -> Params:
    presets = [f"decode.presets.{m}_MODE.{k}={v}" for m in "SQ" for k, v in (("block_size", 8), ("max_post_steps", 2))]
    overrides = ["decode.block_size=8", "decode.max_new_tokens=12", "runtime.device=cpu", *presets]
    params = validate(apply_overrides(as_dict(Params()), overrides), "test")
    return dataclasses.replace(params, dinfer=DInferParams(python=str(python), timeout_s=timeout_s))

def fake_python(tmp_path, mode: str):
    path = tmp_path / f"python-{mode}"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAKES / "fake_worker.py"}" {mode} "$@"\n')
    path.chmod(0o755)
    return path

def logged(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

M2T = Request(prompt="Once upon a time", mode="S", tau_edit=1.0)
def test_a_healthy_worker_serves_m2t_requests(model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DINFER_LOG", str(tmp_path / "log.jsonl"))
    engine, events = make_engine("dinfer", model_dir, params_for(fake_python(tmp_path, "ok"))), []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        first = engine.complete(M2T, events.append)
        second = engine.complete(dataclasses.replace(M2T, tau_mask=0.7, seed=3))
    engine.close()
    prompt = engine.tokenizer(M2T.prompt, add_special_tokens=False)["input_ids"]
    expected = ("dinfer", prompt[:3] + [engine.special.eos_id], "stop", [])
    assert (first.engine, first.ids, first.finish_reason, first.notices) == expected
    assert first.text == engine.tokenizer.decode(prompt[:3]) and second.engine == "dinfer"
    assert [len(r.unmasked) for r in first.result.trace] == [2, 2]
    stats = first.result.stats
    assert (stats.forwards, stats.cache_forwards, stats.prefill_forwards, stats.tpf) == (2, 0, 3, len(first.ids) / 2)
    assert [e["type"] for e in events] == ["pass", "pass", "block"] and events[-1]["ids"] == first.ids
    log = logged(tmp_path / "log.jsonl")
    assert [m["op"] for m in log] == ["hello", "load", "generate", "generate", "quit"]
    assert log[0]["argv"][0].endswith("hildanext/decode/dinfer_worker.py") and os.path.exists(log[0]["argv"][0])
    assert (log[1]["model_dir"], log[1]["device"], log[1]["dtype"]) == (str(model_dir.resolve()), "cuda", "float32")
    sent = log[2]
    assert (sent["prompt_ids"], sent["max_new_tokens"], sent["block_size"], sent["threshold"],
            sent["temperature"]) == (prompt, 12, 8, 0.5, 0.0)
    ids = (sent["mask_id"], sent["eos_id"], sent["stop_ids"], sent["early_stop"], sent["seed"])
    assert ids == (151669, 151645, [151643], True, 0)
    assert 151669 in sent["suppress_ids"] and 151645 not in sent["suppress_ids"]
    assert (log[3]["threshold"], log[3]["seed"]) == (0.7, 3)

@pytest.mark.parametrize("request_, overrides, notice", [
    (Request(prompt="Once upon a time", mode="S"), [], "editing is on (tau_edit 0 < 1)"),
    (Request(prompt="Once upon a time", mode="Q"), [], "editing is on (tau_edit 0.5 < 1)"),
    (Request(prompt="Once upon a time", mode=None, tau_edit=1.0, temperature=0.8), ["decode.top_p=0.9"],
     "top_k/top_p sampling"),
    (Request(prompt="Once upon a time", tau_edit=1.0, policies={"fallback": "leftmost", "carry_next": True}), [],
     "decode policies carry_next, fallback are on"),
])
def test_requests_dinfer_cannot_serve_are_ours_with_a_logged_notice(model_dir, reference, tmp_path, monkeypatch,
                                                                    caplog, request_, overrides, notice):
    monkeypatch.setenv("FAKE_DINFER_LOG", str(tmp_path / "log.jsonl"))
    params = params_for(fake_python(tmp_path, "ok"))
    params = validate(apply_overrides(as_dict(params), overrides), "test")
    ours = DiffusionEngine(reference.model, reference.tokenizer, params, model_dir).complete(request_)
    with warnings.catch_warnings(), caplog.at_level("INFO", logger="hildanext.decode.dinfer"):
        warnings.simplefilter("error")
        got = DInferEngine(reference.model, reference.tokenizer, params, model_dir).complete(request_)
    assert got.engine == "diffusion" and notice in got.notices[0] and notice in caplog.text
    assert (got.ids, got.text, got.result.trace) == (ours.ids, ours.text, ours.result.trace)
    assert logged(tmp_path / "log.jsonl") == []

def test_a_token_shift_folder_is_ours_and_the_worker_never_starts(model_dir, reference, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_DINFER_LOG", str(tmp_path / "log.jsonl"))
    params, info = params_for(fake_python(tmp_path, "ok")), dataclasses.replace(reference.info, shift=True)
    ours = DiffusionEngine(reference.model, reference.tokenizer, params, model_dir, info).complete(M2T)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = DInferEngine(reference.model, reference.tokenizer, params, model_dir, info).complete(M2T)
    assert got.engine == "diffusion" and got.notices == [
        "the folder uses token shift: dInfer's BlockDiffusionLLM has none, so the diffusion engine served it"]
    assert (got.ids, got.result.trace) == (ours.ids, ours.result.trace) and logged(tmp_path / "log.jsonl") == []
    unshifted = reference.complete(M2T)
    assert ours.result.trace != unshifted.result.trace

@pytest.mark.parametrize("mode, reason", [
    ("crash", "exited during generate (exit code 3): RuntimeError: CUDA error: device-side assert triggered"),
    ("hang", "no answer to hello within 1.5 s"),
    ("cc61", "CUDA compute capability 6.1 of fake GTX 1080 is below dinfer.min_compute_capability 8"),
    ("novllm", "dinfer and vllm not importable"),
    ("missing", "is not an executable"),
    ("garbled", "malformed generate reply from the worker (KeyError: 'ids')"),
])
def test_any_failure_falls_back_with_one_warning_and_the_same_output(model_dir, reference, tmp_path, mode, reason):
    python = tmp_path / "no/python" if mode == "missing" else fake_python(tmp_path, mode)
    params = params_for(python, timeout_s=1.5)
    engine = DInferEngine(reference.model, reference.tokenizer, params, model_dir)
    started = time.monotonic()
    with pytest.warns(RuntimeWarning) as caught:
        got = [engine.complete(dataclasses.replace(M2T, seed=seed)) for seed in (0, 1)]
    want = [reference.complete(dataclasses.replace(M2T, seed=seed)) for seed in (0, 1)]
    assert len(caught) == 1 and reason in str(caught[0].message) and time.monotonic() - started < 30
    assert all(g.engine == "diffusion" and reason in g.notices[0] for g in got) and engine.process is None
    assert [(g.ids, g.text, g.result.trace) for g in got] == [(w.ids, w.text, w.result.trace) for w in want]

@pytest.fixture
def fake_dinfer(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES))
    monkeypatch.delitem(sys.modules, "dinfer", raising=False)
    import dinfer
    dinfer.CALLS.clear()
    return dinfer

def saved_tiny(tmp_path, attn: str = "sdpa"):
    model = lively(make_tiny_qwen3(attn=attn))
    model.save_pretrained(tmp_path / attn)
    return model, tmp_path / attn

def request_for(prompt, **kw) -> dict:
    base = {"op": "generate", "id": "r1", "prompt_ids": prompt, "max_new_tokens": 21, "block_size": 8, "threshold": 0.9,
            "temperature": 0.0, "seed": 0}
    return base | {"mask_id": MASK, "eos_id": EOS, "stop_ids": [], "suppress_ids": [125], "early_stop": True} | kw

def ours(model, request: dict):
    settings = DecodeSettings(tau_mask=request["threshold"], tau_edit=1.0, block_size=request["block_size"],
                              max_new_tokens=request["max_new_tokens"])
    return generate_ids(model, request["prompt_ids"], settings,
                        SpecialIds(MASK, request["eos_id"], (), tuple(request["suppress_ids"])))

def same_decode(reply: dict, mine) -> bool:
    passes = [[r.block, r.step, r.masks_left, [list(u) for u in r.unmasked]] for r in mine.trace if r.unmasked]
    return reply["ids"][: len(mine.ids)] == mine.ids and [p for p in reply["trace"] if p[3]] == passes

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_worker_drives_dinfer_with_the_pinned_arguments_and_matches_our_decoder(fake_dinfer, tmp_path, attn):
    from hildanext.decode.dinfer_worker import PassRecorder, Qwen3DInfer, Runner
    model, folder = saved_tiny(tmp_path, attn)
    runner, calls = Runner(str(folder), "float32", "cpu", attn), []
    def record(module, args, kw):
        calls.append((args[0].shape[1], sorted(kw), kw.get("replace_position")))
    runner.model.register_forward_pre_hook(record, with_kwargs=True)
    request = request_for(list(range(10, 21)))
    reply = runner.generate(request)
    mine = ours(model, request)
    names = {name: kw for name, kw in fake_dinfer.CALLS}
    assert names["ThresholdParallelDecoder"] == {"temperature": 0.0, "threshold": 0.9, "remasking": "low_confidence",
                                                 "mask_id": MASK, "eos_id": EOS}
    assert names["BlockIteratorFactory"] == {"start_block_align": True, "use_block_diffusion": True}
    assert names["KVCacheFactory"] == {"cache_type": "prefix", "cache_update_freq": None, "is_bd_model": True,
                                       "backend": "vllm"}
    llm = names["BlockDiffusionLLM"]
    assert isinstance(llm["model"], Qwen3DInfer) and isinstance(llm["decoder"], PassRecorder)
    assert (llm["early_stop"], llm["backend"]) == (True, "vllm")
    assert calls[0] == (8, ["attention_mask", "position_ids", "use_cache"], None)
    assert calls[1] == (8, ["past_key_values", "position_ids", "replace_position", "use_cache"], (8, 16))
    assert same_decode(reply, mine) and len(mine.ids) == 21 and max(p[1] for p in reply["trace"]) >= 2
    assert reply["passes"] == len(reply["trace"]) and reply["forwards"] == len(calls) and reply["notes"] == []

def test_eos_in_the_prompt_tail_turns_dinfer_early_stop_off(fake_dinfer, tmp_path):
    from hildanext.decode.dinfer_worker import Runner
    model, folder = saved_tiny(tmp_path)
    request = request_for([10, 11, 12, 13, 14, 15, 16, 17, 18, EOS, 19], max_new_tokens=10)
    reply = Runner(str(folder), "float32", "cpu").generate(request)
    assert "early stop off" in reply["notes"][0] and fake_dinfer.CALLS[-1][1]["early_stop"] is False
    assert same_decode(reply, ours(model, request))

def test_wrapper_forward_gives_our_decoders_block_logits(fake_dinfer):
    from hildanext.decode.dinfer_worker import Qwen3DInfer
    model, size = lively(make_tiny_qwen3(), 0.3).double(), 4
    wrapper, canvas = Qwen3DInfer(model), torch.randint(0, 120, (1, 12))
    canvas[0, 9], canvas[0, 11] = MASK, MASK
    bd_mask = torch.tril(torch.ones(3, 3)).repeat_interleave(size, 0).repeat_interleave(size, 1)[None]
    with torch.no_grad():
        pre = wrapper(canvas[:, :8], use_cache=True, attention_mask=bd_mask[:, :8, :8],
                      position_ids=torch.arange(8)[None])
        manager = fake_dinfer.KVCacheFactory("prefix", is_bd_model=True).create()
        manager.update(pre.past_key_values)
        manager.extend_cache(12)
        cache, replace = manager.get_key_values(8, 12)
        step = wrapper(canvas[:, 8:12], position_ids=torch.arange(8, 12)[None], use_cache=True, past_key_values=cache,
                       replace_position=replace)
        decoder = BlockDecoder(model, canvas[0, :8], DecodeSettings(0.5, 1.0, size, 4, 0), SpecialIds(MASK, EOS))
        decoder.canvas[8:12] = canvas[0, 8:12]
        decoder.execute(Fill(0, 8))
        ours_block = decoder.execute(PassAt(2, 0, 8, 12))
        full = masked_logits(model, canvas, block_causal(0, 12, size))
    assert torch.allclose(pre.logits, full[:, :8], atol=1e-10)
    assert torch.allclose(step.logits[0], ours_block, atol=1e-10)
    assert len(pre.past_key_values) == 2 * model.config.num_hidden_layers
    assert [t.shape[2] for t in step.past_key_values] == [12] * 4
    wrapper.ban([MASK, 3])
    with torch.no_grad():
        banned = wrapper(canvas[:, 8:12], position_ids=torch.arange(8, 12)[None], past_key_values=cache,
                         replace_position=replace).logits
    assert torch.isinf(banned[..., [3, MASK]]).all() and torch.allclose(banned[..., :3], step.logits[..., :3])

@pytest.mark.filterwarnings("ignore:`rope_scaling` is deprecated:FutureWarning")
def test_a_transformers_5_rope_config_reaches_transformers_4(tmp_path, monkeypatch):
    import transformers
    from hildanext.decode.dinfer_worker import load_config
    model = make_tiny_qwen3()
    model.config.rope_parameters = {"rope_theta": 1e6, "rope_type": "default"}
    model.save_pretrained(tmp_path)
    monkeypatch.setattr(transformers, "__version__", "4.57.6")
    config = load_config(str(tmp_path))
    assert (config.rope_theta, config.rope_scaling) == (1e6, None)

def worker_env() -> dict:
    return os.environ | {"PYTHONPATH": os.pathsep.join([str(FAKES), os.environ.get("PYTHONPATH", "")])}

@pytest.mark.slow
def test_the_worker_process_speaks_the_protocol(tmp_path):
    model, folder = saved_tiny(tmp_path)
    request = request_for(list(range(10, 21)))
    messages = [{"op": "hello"}, {"op": "generate", "id": "early"},
                {"op": "load", "model_dir": str(folder), "dtype": "float32", "device": "cpu"}, request, {"op": "nope"},
                {"op": "quit"}]
    worker = REPO / "src/hildanext/decode/dinfer_worker.py"
    run = subprocess.run([sys.executable, str(worker)], input="\n".join(json.dumps(m) for m in messages) + "\n",
                         env=worker_env(), capture_output=True, text=True, timeout=300)
    replies = [json.loads(line) for line in run.stdout.splitlines()]
    assert run.returncode == 0
    assert [r["op"] for r in replies] == ["hello", "generate", "load", "generate", "nope", "quit"]
    hello = replies[0]
    versions = (hello["protocol"], hello["dinfer"], hello["vllm"], hello["cuda"], hello["capability"])
    assert versions == (1, "0.1", None, False, None)
    assert "vllm" in hello["errors"] and replies[1]["error"] == "RuntimeError: generate before load"
    assert "unknown op" in replies[4]["error"]
    assert replies[2]["ok"] and same_decode(replies[3], ours(model, request)) and "fake dInfer:" in run.stderr

@pytest.mark.slow
def test_dinfer_engine_end_to_end_through_the_real_worker(model_dir, reference, monkeypatch):
    monkeypatch.setattr(engine_module, "capability_problem", lambda *args: None)
    monkeypatch.setattr(engine_module, "DEVICE", "cpu")
    monkeypatch.setenv("PYTHONPATH", worker_env()["PYTHONPATH"])
    params = params_for(sys.executable, timeout_s=300)
    request = Request(prompt="Once upon a time", mode="S", tau_mask=0.9, tau_edit=1.0)
    engine = make_engine("dinfer", model_dir, params)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = engine.complete(request)
    engine.close()
    want = reference.complete(request)
    assert (got.engine, got.notices) == ("dinfer", [])
    assert (got.ids, got.text, got.finish_reason) == (want.ids, want.text, want.finish_reason)
    assert [r for r in got.result.trace if r.unmasked] == [r for r in want.result.trace if r.unmasked]
    assert len(want.result.trace) > 2
