# The Engine interface: DiffusionEngine equals generate_ids on the same settings (mode presets, explicit
# taus win), finish_reason and stop strings, the observer's block events are append-only prefixes of the
# answer, AREngine wraps HF generate, a saved folder's ModelInfo (ids, trained block size) drives the settings,
# the registry matches the params' engine names (transformers an alias) and refuses unknown names in one line.
import pytest
from transformers import AutoTokenizer
from conftest import make_tiny_qwen3
from hildanext.config import Params, ParamsError
from hildanext.config.decode import ENGINE_NAMES
from hildanext.decode.ar import AREngine
from hildanext.decode.decoder import generate_ids
from hildanext.decode.dinfer import DInferEngine
from hildanext.decode.engines import ALIASES, ENGINES, DiffusionEngine, Request, cut_at_stop_strings, engine_class
from hildanext.decode.engines import make_engine
from hildanext.decode.settings import DecodeSettings, SpecialIds
from hildanext.model import ModelInfo, add_mask_token, model_meta, save_model
@pytest.fixture(scope="module")
def engine(qwen3_tokenizer_dir):
    tokenizer = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir)
    model = make_tiny_qwen3(vocab_size=151936, seed=5)
    add_mask_token(model, tokenizer)
    return DiffusionEngine(model, tokenizer, Params())

def test_engine_equals_the_decoder_and_explicit_taus_win(engine):
    request = Request(prompt="Once upon a time", mode="Q", tau_edit=0.9, max_new_tokens=40, seed=3)
    out = engine.complete(request)
    prompt = engine.tokenizer("Once upon a time", add_special_tokens=False)["input_ids"]
    special = SpecialIds(engine.tokenizer.mask_token_id, 151645, (151643,), engine.special.banned_ids)
    direct = generate_ids(engine.model, prompt,
                          DecodeSettings(tau_mask=0.7, tau_edit=0.9, block_size=32, max_new_tokens=40,
                                         max_post_steps=16, seed=3), special)
    assert out.ids == direct.ids and out.prompt_tokens == len(prompt) and out.engine == "diffusion"
    assert engine.special == special
    assert out.text == engine.tokenizer.decode(direct.ids, skip_special_tokens=True)
    assert out.finish_reason == ("stop" if direct.ids[-1] in (151645, 151643) else "length")
    assert engine.generate("Once upon a time", mode="Q", tau_edit=0.9, max_new_tokens=40, seed=3) == out.text

def test_block_events_are_append_only_prefixes(engine):
    events = []
    out = engine.complete(Request(prompt="A cat", max_new_tokens=70, seed=1), observer=events.append)
    blocks = [e["ids"] for e in events if e["type"] == "block"]
    assert len(blocks) >= 2 and blocks[-1] == out.ids
    assert all(later[: len(earlier)] == earlier for earlier, later in zip(blocks, blocks[1:], strict=False))
    assert sum(e["type"] == "pass" for e in events) == out.result.stats.forwards

def test_stop_strings_cut_the_text_and_set_finish_reason(engine):
    assert cut_at_stop_strings("one two three", ["two", "three"]) == ("one ", True)
    assert cut_at_stop_strings("one", ["x", ""]) == ("one", False)
    full = engine.complete(Request(prompt="A dog", max_new_tokens=24, seed=2))
    stop = full.text[3:6]
    cut = engine.complete(Request(prompt="A dog", max_new_tokens=24, seed=2, stop=(stop,)))
    assert cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"

def test_a_stop_string_in_a_finished_block_ends_decoding_after_it(engine):
    events = []
    full = engine.complete(Request(prompt="A cat", max_new_tokens=96, seed=1), observer=events.append)
    first_block = next(i for i, e in enumerate(events) if e["type"] == "block")
    passes = sum(e["type"] == "pass" for e in events[:first_block])
    stop = engine.tokenizer.decode(events[first_block]["ids"], skip_special_tokens=True)[2:5]
    cut = engine.complete(Request(prompt="A cat", max_new_tokens=96, seed=1, stop=(stop,)))
    assert len(stop) == 3 and cut.text == full.text[: full.text.find(stop)] and cut.finish_reason == "stop"
    assert cut.result.stats.forwards == passes < full.result.stats.forwards

def test_ar_engine_and_unknown_engine_name(engine, tmp_path):
    ar = AREngine(engine.model, engine.tokenizer, Params())
    out = ar.complete(Request(prompt="Hello", max_new_tokens=5))
    assert out.engine == "ar" and out.result.stats.tpf == 1.0 and len(out.ids) <= 5
    with pytest.raises(ParamsError, match="engine: 'vllm' is not one of diffusion, ar, dinfer, transformers"):
        make_engine("vllm", tmp_path, Params())

def test_registry_names_are_the_params_engine_names():
    assert set(ENGINE_NAMES) == set(ENGINES) | set(ALIASES) and ALIASES == {"transformers": "diffusion"}
    classes = [engine_class(n) for n in ("diffusion", "transformers", "ar", "dinfer")]
    assert classes == [DiffusionEngine, DiffusionEngine, AREngine, DInferEngine]
    assert [engine_class(n).name for n in ENGINES] == list(ENGINES)

def test_a_saved_folder_describes_itself_to_the_engine(engine, tmp_path):
    folder = save_model(engine.model, engine.tokenizer, tmp_path / "m",
                        model_meta(engine.tokenizer, "test", None, 16, "h", "c0ffee"))
    loaded = make_engine("diffusion", folder, Params())
    assert loaded.info == ModelInfo(151645, 151669, (151643,), 151643, 16) and loaded.special == engine.special
    assert [loaded.prepare(Request(prompt="Hi", mode=m)).settings.block_size for m in (None, "S", "Q")] == [16, 16, 16]
    assert engine.info.block_size is None
    assert engine.prepare(Request(prompt="Hi")).settings.block_size == Params().wsd.decay_to == 32
    ar = make_engine("ar", folder, Params())
    assert isinstance(ar, AREngine) and ar.info == loaded.info
    assert ar.complete(Request(prompt="Hi", max_new_tokens=3)).engine == "ar"
