# The Engine interface: TransformersEngine equals generate_ids on the same settings (mode presets, explicit
# taus win), finish_reason and stop strings, the observer's block events are append-only prefixes of the
# answer, AREngine wraps HF generate, and make_engine refuses unknown names in one line.
import pytest
from transformers import AutoTokenizer
from conftest import make_tiny_qwen3
from hildanext.config import Params, ParamsError
from hildanext.decode.decoder import generate_ids
from hildanext.decode.engines import AREngine, Request, TransformersEngine, cut_at_stop_strings, make_engine
from hildanext.model import add_mask_token
@pytest.fixture(scope="module")
def engine(qwen3_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    model = make_tiny_qwen3(vocab_size=151936, seed=5)
    add_mask_token(model, tokenizer)
    return TransformersEngine(model, tokenizer, Params())

def test_engine_equals_the_decoder_and_explicit_taus_win(engine):
    request = Request("Once upon a time", mode="Q", tau_edit=0.9, max_new_tokens=40, seed=3)
    out = engine.complete(request)
    prompt = engine.tokenizer("Once upon a time", add_special_tokens=False)["input_ids"]
    direct = generate_ids(engine.model, prompt, mask_id=engine.tokenizer.mask_token_id, eos_id=engine.eos_id, stop_ids=engine.stop_ids, suppress_ids=engine.suppress, block_size=32, tau_mask=0.7, tau_edit=0.9, max_post_steps=16, max_new_tokens=40, seed=3)
    assert out.ids == direct.ids and out.prompt_tokens == len(prompt) and out.engine == "transformers"
    assert out.text == engine.tokenizer.decode(direct.ids, skip_special_tokens=True)
    assert out.finish_reason == ("stop" if direct.ids[-1] in (engine.eos_id, *engine.stop_ids) else "length")
    assert engine.generate("Once upon a time", mode="Q", tau_edit=0.9, max_new_tokens=40, seed=3) == out.text

def test_block_events_are_append_only_prefixes(engine):
    events = []
    out = engine.complete(Request("A cat", max_new_tokens=70, seed=1), observer=events.append)
    blocks = [e["ids"] for e in events if e["type"] == "block"]
    assert len(blocks) >= 2 and blocks[-1] == out.ids
    assert all(later[: len(earlier)] == earlier for earlier, later in zip(blocks, blocks[1:], strict=False))
    assert sum(e["type"] == "pass" for e in events) == out.result.stats.forwards

def test_stop_strings_cut_the_text_and_set_finish_reason(engine):
    assert cut_at_stop_strings("one two three", ["two", "three"]) == ("one ", True)
    assert cut_at_stop_strings("one", ["x", ""]) == ("one", False)
    full = engine.complete(Request("A dog", max_new_tokens=24, seed=2))
    stop = full.text[3:6]
    cut = engine.complete(Request("A dog", max_new_tokens=24, seed=2, stop=(stop,)))
    assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"

def test_ar_engine_and_unknown_engine_name(engine, tmp_path):
    ar = AREngine(engine.model, engine.tokenizer, Params())
    out = ar.complete(Request("Hello", max_new_tokens=5))
    assert out.engine == "ar" and out.result.stats.tpf == 1.0 and len(out.ids) <= 5
    with pytest.raises(ParamsError, match="engine: 'vllm' is not one of transformers, ar, dinfer"):
        make_engine("vllm", tmp_path, Params())
