# Token shift on the decoding side (settings.shift: canvas position p reads the forward's output at p - 1), in
# float64 on tiny real Qwen3 models: at block size 1 the decoder is greedy AR decoding of the INIT-like model
# (ids and per-pass logits), cached == uncached == static query (block 4 and 8, prompts shorter than, equal to
# and longer than a block, S and Q, a stop mid-block, the remask pass), one pass against a hand-built
# block-causal reference, an empty prompt refused, and the folder's hildanext.json "shift" reaching the settings.
import dataclasses, json, shutil
import pytest
import torch
from transformers import AutoTokenizer
from conftest import make_tiny_qwen3
from hildanext.config import DecodeParams, ObjectiveParams, Params
from hildanext.decode.ar import ar_generate_ids
from hildanext.decode.decoder import BlockDecoder, Fill, PassAt, generate_ids
from hildanext.decode.engines import Request, make_engine
from hildanext.decode.settings import DecodeSettings, SpecialIds, resolve_settings
from hildanext.model import ModelInfo, info_from_record, model_meta, read_model_info
MASK, EOS, ROWS = 127, 126, 128
SPECIAL, NEVER_EOS = SpecialIds(MASK, EOS, (), (MASK,)), SpecialIds(MASK, EOS, (), (MASK, EOS))
def init_like(seed: int = 2, std: float = 0.3):
    """A plain causal Qwen3 (127 rows, decisive random weights) with one embedding row added for <|mask|>."""
    model = make_tiny_qwen3(vocab_size=ROWS - 1, seed=seed).double()
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, std)
    model.resize_token_embeddings(ROWS, mean_resizing=False)
    return model.eval()

class PassLogits(BlockDecoder):
    """The decoder as it is, keeping every pass's (start, logits) as well."""
    def apply_pass(self, at: PassAt, logits, editable) -> bool:
        self.seen = getattr(self, "seen", []) + [(at.start, logits.clone())]
        return super().apply_pass(at, logits, editable)

def run_pass_logits(model, prompt, settings, special):
    decoder = PassLogits(model, torch.tensor(prompt), settings, special)
    with torch.inference_mode():
        ids = decoder.run()
    return ids, decoder.seen

@pytest.mark.parametrize("cache", [False, True])
def test_block_size_one_with_shift_is_greedy_ar_decoding(cache):
    model, prompt = init_like(), [5, 9, 3, 17]
    settings = DecodeSettings(0.9, 0.5, 1, 12, 2, cache=cache, shift=True)
    ar = ar_generate_ids(model, prompt, settings, NEVER_EOS).ids
    ids, seen = run_pass_logits(model, prompt, settings, NEVER_EOS)
    assert ids == ar and len(ar) == 12 and len(set(ar)) > 3
    with torch.no_grad():
        causal = model(input_ids=torch.tensor([prompt + ids])).logits[0]
    assert {start for start, _ in seen} == set(range(len(prompt), len(prompt) + 12)) and len(seen) >= 24
    assert max(float((logits[0] - causal[start - 1]).abs().max()) for start, logits in seen) < 1e-9

def shifted_settings(block: int, mode: str, **kw) -> DecodeSettings:
    return resolve_settings(DecodeParams(), block, mode, shift=True, block_size=block, max_post_steps=3, **kw)

def three_ways(model, prompt, settings, special):
    """Uncached, cached windowed and cached static-query decodes of the same request."""
    variants = [dict(cache=False), dict(cache=True), dict(cache=True, cuda_graphs=True)]
    return [generate_ids(model, prompt, dataclasses.replace(settings, **v), special) for v in variants]

@pytest.mark.parametrize("block", [4, 8])
@pytest.mark.parametrize("mode", ["S", "Q"])
def test_cached_equals_uncached_with_shift_and_a_stop_mid_block(block, mode):
    model = init_like(seed=3)
    for prompt_len in (3, block, block + 3):
        prompt = list(range(20, 20 + prompt_len))
        settings = shifted_settings(block, mode, max_new_tokens=3 * block, tau_mask=0.3)
        free = generate_ids(model, prompt, dataclasses.replace(settings, cache=False), SPECIAL).ids
        inside = [i for i in range(len(free)) if (prompt_len + i) % block not in (0, block - 1)]
        mid = [i for i in inside if free[i] not in free[:i]]
        stop = SpecialIds(MASK, free[mid[1]], (), (MASK,))
        plain, cached, static = three_ways(model, prompt, settings, stop)
        assert EOS not in free and plain.ids == cached.ids == static.ids == free[: mid[1] + 1]
        assert plain.trace == cached.trace == static.trace and (mode == "Q" or any(r.edited for r in plain.trace))
        assert plain.stats.forwards == cached.stats.forwards == static.stats.forwards

@pytest.mark.parametrize("block", [4, 8])
def test_the_remask_pass_with_shift_is_the_same_cached_or_not(block):
    model = init_like(seed=4)
    for prompt_len in (3, block, block + 3):
        settings = shifted_settings(block, "Q", max_new_tokens=2 * block, tau_mask=0.2, remask_pass=True)
        plain, cached, static = three_ways(model, list(range(30, 30 + prompt_len)), settings, NEVER_EOS)
        assert plain.remask.remasked > 0 and any(r.phase == "remask" for r in plain.trace)
        assert plain.ids == cached.ids == static.ids and plain.trace == cached.trace == static.trace
        assert plain.remask == cached.remask == static.remask

def block_causal_reference(model, canvas: list[int], block: int) -> torch.Tensor:
    """Logits of one full forward over canvas under the hand-written mask: i sees j iff j // block <= i // block."""
    n = len(canvas)
    allowed = torch.tensor([[j // block <= i // block for j in range(n)] for i in range(n)])
    with torch.no_grad():
        return model(input_ids=torch.tensor([canvas]), attention_mask=allowed[None, None],
                     position_ids=torch.arange(n)[None]).logits[0]

@pytest.mark.parametrize("cache", [False, True])
def test_one_shifted_block_pass_equals_a_hand_built_reference(cache):
    model, block, prompt = init_like(seed=5), 4, [40, 41, 42, 43, 44, 45]
    settings = DecodeSettings(0.2, 1.0, block, 6, 0, cache=cache, shift=True)
    decoder = BlockDecoder(model, torch.tensor(prompt), settings, SPECIAL)
    decoder.canvas[6] = 50
    with torch.inference_mode():
        decoder.execute(Fill(0, 4))
        logits = decoder.execute(PassAt(1, 0, 4, 8))
        ref = block_causal_reference(model, decoder.canvas[:8].tolist(), block)
        assert logits.shape == (4, ROWS) and float((logits - ref[3:7]).abs().max()) < 1e-10
        editable = torch.tensor([False, False, True, True])
        decoder.apply_pass(PassAt(1, 0, 4, 8), logits, editable)
    probs = ref[7 - 1].index_fill(-1, torch.tensor([MASK]), -torch.inf).softmax(-1)
    expected = [40, 41, 42, 43, 44, 45, 50, int(probs.argmax())]
    assert decoder.canvas[:8].tolist() == expected and decoder.trace[0].unmasked == [(1, expected[7])]
    assert decoder.trace[0].masks_left == 0 and decoder.trace[0].edited == []

def test_block_zero_pads_the_row_of_position_zero_and_an_empty_prompt_is_refused():
    model, block = init_like(seed=6), 4
    settings = DecodeSettings(0.2, 1.0, block, 2, 0, cache=True, shift=True)
    decoder = BlockDecoder(model, torch.tensor([60, 61]), settings, SPECIAL)
    with torch.inference_mode():
        logits = decoder.execute(PassAt(0, 0, 0, 4))
    ref = block_causal_reference(model, decoder.canvas[:4].tolist(), block)
    assert float(logits[0].abs().max()) == 0 and float((logits[1:] - ref[:3]).abs().max()) < 1e-10
    with pytest.raises(ValueError, match="token shift needs a non-empty prompt"):
        generate_ids(model, [], settings, SPECIAL)
    assert generate_ids(model, [], dataclasses.replace(settings, shift=False), SPECIAL).stats.tokens >= 1

def test_the_folder_records_shift_and_the_engine_decodes_with_it(model_dir, tmp_path):
    folder = shutil.copytree(model_dir, tmp_path / "shifted")
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    info = read_model_info(model_dir, tokenizer)
    (folder / "hildanext.json").write_text(json.dumps(dataclasses.replace(info, shift=True).record()))
    assert info.shift is False and read_model_info(folder) == dataclasses.replace(info, shift=True)
    assert info_from_record({"eos_id": 3}) == ModelInfo(3) and ModelInfo(3).record()["shift"] is False
    request, events = Request(prompt="Once upon a time", mode="S", max_new_tokens=6), []
    shifted, plain = (make_engine("diffusion", f, Params()) for f in (folder, model_dir))
    assert shifted.prepare(request).settings.shift is True and plain.prepare(request).settings.shift is False
    out = shifted.complete(request, events.append)
    assert 0 < out.result.stats.tokens <= 6 and (events[-1]["type"], events[-1]["ids"]) == ("block", out.ids)

def test_model_meta_records_the_objective_shift_of_a_folder_with_a_mask(model_dir):
    tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
    on = dataclasses.replace(Params(), objective=dataclasses.replace(ObjectiveParams(), shift=True))
    metas = [model_meta(tokenizer, "init", p, 1, "h", "c0ffee") for p in (on, Params(), None)]
    assert [m["shift"] for m in metas] == [True, False, False] and metas[0]["params"]["objective"]["shift"] is True
    tokenizer.mask_token = None
    assert model_meta(tokenizer, "demo_base", on, 1, "h", "c0ffee")["shift"] is False
