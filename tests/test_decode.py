# The decoder against hand-written expectations: Gamma/Delta on a scripted fake LM (threshold, at-least-one,
# tau_edit 0, prompt never edited, post-step budget), stops, suppressed ids, TPF and token-shift windows by hand,
# cached == uncached in float64 on a tiny Qwen3 (P and N off the block grid, a stop mid-block, refreshed blocks),
# seeds, the AR baseline, settings resolution (modes, explicit values, the trained block size and its warning),
# tokenizer ids, and `hildanext generate` on saved tiny models with the real Qwen3 tokenizer (folder order, params).
import dataclasses, json, logging, os, re, shutil, subprocess, sys
from types import SimpleNamespace
import pytest
import torch
from transformers import AutoTokenizer
from typer.testing import CliRunner
from conftest import REPO, make_tiny_qwen3
from hildanext.decode import engines
from hildanext.cli import app
from hildanext.config import DecodeParams, ParamsError, as_dict, load_params
from hildanext.decode.ar import ar_generate_ids
from hildanext.decode.decoder import PassRecord, generate_ids, propose
from hildanext.decode.settings import DecodeSettings, SpecialIds, resolve_settings
from hildanext.model import add_mask_token, model_meta, save_model, suppressed_ids, tokenizer_info
VOCAB, MASK, EOS, BANNED = 16, 15, 14, 11
class ScriptedLM(torch.nn.Module):
    """Fake causal LM: per forward, one {token: probability} row per kept position (rest spread evenly)."""
    def __init__(self, script):
        super().__init__()
        self.script, self.inputs = script, []
        self.config = SimpleNamespace(vocab_size=VOCAB, _attn_implementation="sdpa")
        self.dtype, self.device = torch.float32, torch.device("cpu")
    def forward(self, input_ids, position_ids, logits_to_keep, **kwargs):
        self.inputs.append(input_ids[0].tolist())
        positions = position_ids[0, -logits_to_keep:].tolist()
        if callable(self.script):
            rows = self.script(positions)
        else:
            rows = self.script[min(len(self.inputs), len(self.script)) - 1]
        return SimpleNamespace(logits=torch.stack([row_logits(row) for row in rows])[None])

def row_logits(row: dict) -> torch.Tensor:
    rest = (1 - sum(row.values())) / (VOCAB - len(row))
    probs = torch.full((VOCAB,), rest)
    for token, p in row.items():
        probs[token] = p
    return probs.log()

def run_decoder(model, prompt, *, mask_id: int, eos_id: int, stop_ids=(), suppress_ids=(), observer=None, **settings):
    """generate_ids with the settings bundle and the special ids built from keywords."""
    special = SpecialIds(mask_id, eos_id, tuple(stop_ids), tuple(suppress_ids))
    return generate_ids(model, prompt, DecodeSettings(**settings), special, observer)

def decode(script, prompt, n, **kw):
    model = ScriptedLM(script)
    settings = dict(mask_id=MASK, eos_id=EOS, block_size=4, tau_mask=0.5, tau_edit=0.5, max_post_steps=16,
                    max_new_tokens=n, cache=False) | kw
    return model, run_decoder(model, prompt, **settings)

def test_gamma_threshold_with_one_forced_unmask_then_a_verification_pass():
    script = [[{9: 0.99}, {9: 0.99}, {5: 0.45}, {8: 0.3}], [{9: 0.99}, {9: 0.99}, {5: 0.95}, {7: 0.6}],
              [{9: 0.99}, {9: 0.99}, {5: 0.95}, {7: 0.95}]]
    model, out = decode(script, [1, 2], 2, tau_edit=0.9)
    assert out.ids == [5, 7] and model.inputs == [[1, 2, MASK, MASK], [1, 2, 5, MASK], [1, 2, 5, 7]]
    assert out.trace == [PassRecord(0, 0, 1, [(0, 5)], []), PassRecord(0, 1, 0, [(1, 7)], []),
                         PassRecord(0, 2, 0, [], [])]
    assert (out.stats.forwards, out.stats.tokens, out.stats.tpf) == (3, 2, 2 / 3)

def test_at_least_one_unmasking_per_pass_in_confidence_order():
    script = [[{9: 0.9}, {5: 0.2}, {6: 0.3}, {7: 0.25}]]
    _, out = decode(script, [1], 3, tau_edit=0.0)
    assert out.ids == [5, 6, 7] and out.stats.forwards == 4
    assert [r.unmasked for r in out.trace] == [[(1, 6)], [(2, 7)], [(0, 5)], []]

def test_delta_edits_only_changed_tokens_above_tau_edit():
    fill = [{9: 0.9}, {5: 0.9}, {6: 0.9}, {7: 0.9}]
    script = [fill, [{9: 0.9}, {8: 0.6}, {9: 0.4}, {7: 0.99}], [{9: 0.9}, {8: 0.9}, {6: 0.9}, {7: 0.9}]]
    _, out = decode(script, [1], 3, tau_edit=0.5)
    assert out.ids == [8, 6, 7] and [r.edited for r in out.trace] == [[], [(0, 5, 8)], []]

@pytest.mark.parametrize("tau_edit, max_post_steps, forwards, edits",
                         [(0.0, 2, 3, [[], [(0, 5, 8)], [(0, 8, 5)]]), (0.0, 0, 1, [[]]), (0.5, 2, 2, [[], []])])
def test_tau_edit_zero_edits_low_confidence_changes_within_the_post_budget(tau_edit, max_post_steps, forwards, edits):
    fill = [{9: 0.9}, {5: 0.9}, {6: 0.9}, {7: 0.9}]
    script = [fill, [{9: 0.9}, {8: 0.2}, {6: 0.9}, {7: 0.9}], [{9: 0.9}, {5: 0.2}, {6: 0.9}, {7: 0.9}], fill]
    _, out = decode(script, [1], 3, tau_edit=tau_edit, max_post_steps=max_post_steps)
    assert out.ids == [5, 6, 7] and out.stats.forwards == forwards and [r.edited for r in out.trace] == edits

def test_prompt_tokens_are_never_edited():
    script = [[{9: 0.99}, {9: 0.99}, {9: 0.99}, {5: 0.9}]]
    model, out = decode(script, [1, 2, 3], 1, tau_edit=0.0)
    assert out.ids == [5] and all(x[:3] == [1, 2, 3] for x in model.inputs)
    assert all(r.edited == [] for r in out.trace)

def oracle(targets: dict):
    return lambda positions: [{targets.get(p, 4): 0.9} for p in positions]

@pytest.mark.parametrize("cache", [False, True])
@pytest.mark.parametrize("early, forwards", [(True, 6), (False, 8)])
def test_eos_mid_block_cuts_output_and_early_stop_skips_later_blocks(cache, early, forwards):
    targets = {p: 6 for p in range(3, 16)} | {9: EOS}
    _, out = decode(oracle(targets), [1, EOS, 2], 12, eos_early_stop=early, cache=cache)
    assert out.ids == [6] * 6 + [EOS] and out.stats.forwards == forwards and out.stats.tokens == 7

def test_stop_ids_cut_too_and_output_stops_at_max_new_tokens():
    _, out = decode(oracle({p: 6 for p in range(16)} | {5: 13}), [1, 2, 3], 8, stop_ids=[13])
    assert out.ids == [6, 6, 13] and out.stats.forwards == 4
    _, out = decode(oracle({p: 6 for p in range(16)}), [1, 2, 3], 4)
    assert out.ids == [6] * 4 and out.stats.forwards == 4

def test_confidences_and_proposals_exclude_mask_and_suppressed_ids():
    row = {BANNED: 0.6, MASK: 0.3, 9: 0.08}
    _, out = decode([[row] * 4], [1], 3, tau_mask=0.75, suppress_ids=[BANNED])
    assert out.ids == [9, 9, 9] and out.stats.forwards == 2
    logits = torch.randn(2000, VOCAB) + 5 * torch.nn.functional.one_hot(torch.tensor([BANNED, MASK] * 1000), VOCAB)
    settings = DecodeSettings(0.5, 0.0, 4, 4, 16, temperature=1.0, top_k=3, top_p=0.9)
    for temperature in (0.0, 1.0):
        tokens, conf = propose(logits, torch.tensor([BANNED, MASK]),
                               dataclasses.replace(settings, temperature=temperature), torch.Generator().manual_seed(0))
        assert not torch.isin(tokens, torch.tensor([BANNED, MASK])).any() and bool((conf > 0).all())

def test_tpf_counts_stale_block_refreshes_but_not_the_prompt_prefill():
    script, prompt = oracle({p: 6 for p in range(12)}), [1, 2, 3, 4, 5]
    cached_model, cached = decode(script, prompt, 7, max_post_steps=0, cache=True)
    plain_model, plain = decode(script, prompt, 7, max_post_steps=0)
    s = cached.stats
    assert cached.ids == plain.ids == [6] * 7 and [len(x) for x in cached_model.inputs] == [4, 4, 4, 4]
    assert (s.forwards, s.cache_forwards, s.prefill_forwards, s.tpf) == (2, 1, 1, 7 / 3)
    assert [len(x) for x in plain_model.inputs] == [8, 12] and (plain.stats.forwards, plain.stats.tpf) == (2, 7 / 2)

@pytest.mark.parametrize("cache", [False, True])
def test_shift_reads_each_position_from_the_row_before_it(cache):
    script = oracle({p: (p + 1) % 8 + 2 for p in range(12)})
    model, out = decode(script, [1, 2, 3, 4, 5], 7, cache=cache, shift=True)
    M = MASK
    windows = [[1, 2, 3, 4], [4, 5, M, M, M], [4, 5, 7, 8, 9], [9, M, M, M, M], [9, 2, 3, 4, 5]]
    if not cache:
        windows = [[1, 2, 3, 4, 5, M, M, M], [1, 2, 3, 4, 5, 7, 8, 9], [1, 2, 3, 4, 5, 7, 8, 9, M, M, M, M],
                   [1, 2, 3, 4, 5, 7, 8, 9, 2, 3, 4, 5]]
    assert out.ids == [7, 8, 9, 2, 3, 4, 5] and model.inputs == windows
    model, first_block = decode(script, [1], 3, cache=cache, shift=True)
    assert first_block.ids == [3, 4, 5] and model.inputs[0] == [1, M, M, M]

def lively_qwen3(attn: str):
    model = make_tiny_qwen3(attn=attn).double()
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.normal_(0, 0.3)
    return model

def recorded_lengths(model):
    lengths = []
    model.register_forward_pre_hook(lambda module, args, kwargs: lengths.append(kwargs["input_ids"].shape[1]),
                                    with_kwargs=True)
    return lengths

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_cached_equals_uncached_in_float64_with_a_stop_mid_block(attn):
    model, prompt, block = lively_qwen3(attn), list(range(10, 21)), 8
    kw = dict(mask_id=127, block_size=block, tau_mask=0.3, tau_edit=0.0, max_post_steps=3, max_new_tokens=21)
    free = run_decoder(model, prompt, eos_id=126, cache=False, **kw).ids
    mid_block = [i for i in range(block, len(free)) if (len(prompt) + i) % block not in (0, block - 1)]
    stop_at = next(i for i in mid_block if free[i] not in free[:i])
    lengths = recorded_lengths(model)
    cached = run_decoder(model, prompt, eos_id=free[stop_at], cache=True, **kw)
    cached_lengths = list(lengths)
    uncached = run_decoder(model, prompt, eos_id=free[stop_at], cache=False, **kw)
    assert 126 not in free and cached.ids == uncached.ids == free[: stop_at + 1]
    assert cached.trace == uncached.trace and cached.stats.forwards == uncached.stats.forwards
    assert cached.stats.cache_forwards >= 2 and set(cached_lengths) == {block} and max(lengths) > block

def test_sampling_is_reproducible_per_seed():
    model = make_tiny_qwen3()
    kw = dict(mask_id=127, eos_id=126, block_size=8, tau_mask=0.5, tau_edit=0.5, max_new_tokens=16, temperature=1.0,
              top_p=0.95)
    first, again, other = (run_decoder(model, [3, 4, 5], seed=seed, **kw) for seed in (7, 7, 8))
    assert first.ids == again.ids and first.trace == again.trace and first.ids != other.ids

def test_ar_baseline_is_greedy_causal_decoding():
    model, prompt = make_tiny_qwen3().double(), [5, 6, 7]
    x = torch.tensor([prompt])
    with torch.no_grad():
        for _ in range(6):
            x = torch.cat([x, model(input_ids=x).logits[:, -1:].argmax(-1)], dim=1)
    greedy = DecodeSettings(0.5, 0.0, 1, 6)
    out = ar_generate_ids(model, prompt, greedy, SpecialIds(None, 127))
    assert out.ids == x[0, 3:].tolist() and out.stats.forwards == 6 and out.stats.tpf == 1.0 and len(out.trace) == 6
    suppressed = ar_generate_ids(model, prompt, greedy, SpecialIds(None, 127, (), (out.ids[0],)))
    assert out.ids[0] not in suppressed.ids

def test_mode_presets_then_explicit_values_win(tmp_path):
    params = load_params(REPO / "params.yaml", ["decode.tau_mask=0.6"]).decode
    assert (resolve_settings(params, 32).tau_mask, resolve_settings(params, 32).tau_edit) == (0.6, params.tau_edit)
    preset, q = params.presets.Q_MODE, resolve_settings(params, 32, "q")
    assert (preset.tau_mask, preset.tau_edit) != (params.tau_mask, params.tau_edit)
    assert (q.tau_mask, q.tau_edit, q.max_post_steps) == (preset.tau_mask, preset.tau_edit, preset.max_post_steps)
    assert q.block_size == (preset.block_size or 32) and resolve_settings(params, 32, "Q") == q
    assert (q.max_new_tokens, q.temperature, q.seed) == (params.max_new_tokens, params.temperature, params.seed)
    assert (resolve_settings(params, 32, "Q", tau_edit=0.2).tau_edit,
            resolve_settings(params, 32, "S", tau_mask=None).tau_mask) == (0.2, params.presets.S_MODE.tau_mask)
    with pytest.raises(ParamsError, match="'X' is not one of S, Q"):
        resolve_settings(DecodeParams(), 32, "X")
    with pytest.raises(ParamsError, match="decode.tau_mask: Input should be less than or equal to 1"):
        resolve_settings(DecodeParams(), 32, "S", tau_mask=1.5)
    with pytest.raises(ParamsError, match=r"decode: unknown setting \['tau'\]"):
        resolve_settings(DecodeParams(), 32, tau=0.5)

def test_decoding_defaults_to_the_trained_block_size_and_another_one_warns_once(caplog):
    params = load_params(REPO / "params.yaml").decode
    with caplog.at_level(logging.WARNING, logger="hildanext.decode.settings"):
        default, q = resolve_settings(params, 16), resolve_settings(params, 16, "Q")
        same = resolve_settings(params, 16, block_size=16)
        assert (params.block_size, default.block_size, same.block_size, q.block_size) == (None, 16, 16, 16)
        assert caplog.records == []
        other = resolve_settings(params, 16, "S", block_size=8)
        preset = resolve_settings(load_params(REPO / "params.yaml", ["decode.presets.Q_MODE.block_size=4"]).decode, 16,
                                  "Q")
    assert (other.block_size, preset.block_size) == (8, 4)
    assert [r.getMessage() for r in caplog.records] == [
        "decode block size 8 differs from the model's trained block size 16; decoding with 8",
        "decode block size 4 differs from the model's trained block size 16; decoding with 4",
    ]

def test_stop_and_suppressed_ids_from_the_real_qwen3_tokenizer(qwen3_tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir, local_files_only=True)
    add_mask_token(make_tiny_qwen3(vocab_size=151936), tok)
    info = tokenizer_info(tok)
    assert (info.eos_id, list(info.stop_ids), info.mask_id, info.block_size) == (151645, [151643], 151669, None)
    assert set(suppressed_ids(tok, 151936, [info.eos_id, *info.stop_ids])) == set(range(151644, 151936)) - {151645}

@pytest.fixture(scope="module")
def model_root(tmp_path_factory, qwen3_tokenizer_dir):
    root = tmp_path_factory.mktemp("gen")
    tok = AutoTokenizer.from_pretrained(qwen3_tokenizer_dir, local_files_only=True)
    model = make_tiny_qwen3(vocab_size=151936)
    add_mask_token(model, tok)
    save_model(model, tok, root / "models/init", model_meta(tok, "test", None, 1, "h", "c0ffee"))
    return root

SUMMARY = re.compile(r"mode (S|Q|params): forwards (\d+), tokens (\d+), TPF ([\d.]+), ([\d.]+) tokens/s")
@pytest.mark.parametrize("mode, extra, taus",
                         [("S", [], (0.5, 0.0)), ("Q", [], (0.7, 0.5)), ("Q", ["--tau-edit", "0.9"], (0.7, 0.9))])
def test_generate_command_in_both_modes(model_root, monkeypatch, mode, extra, taus):
    seen = []
    def spy(model, prompt_ids, settings, special, observer=None):
        return seen.append((settings, special)) or generate_ids(model, prompt_ids, settings, special, observer)
    monkeypatch.setattr(engines, "generate_ids", spy)
    small = ["--set", f"decode.presets.{mode}_MODE.block_size=8", "--params", str(model_root / "none.yaml")]
    args = ["generate", "Once upon a time", "--mode", mode, "--max-new-tokens", "3", "--trace", "--model",
            str(model_root / "models/init")]
    out = CliRunner().invoke(app, args + extra + small)
    lines = out.stdout.strip().splitlines()
    summary = SUMMARY.search(lines[-1])
    forwards, tokens, tpf = int(summary[2]), int(summary[3]), float(summary[4])
    assert out.exit_code == 0 and summary[1] == mode and 0 < tokens <= 3 and tpf == round(tokens / forwards, 2)
    assert len([line for line in lines if line.startswith("block 0 step ")]) == forwards
    (settings, special), = seen
    assert (settings.tau_mask, settings.tau_edit, settings.block_size, special.mask_id) == (*taus, 8, 151669)
    assert 151669 in special.banned_ids and 151643 not in special.banned_ids and special.stop_ids == (151643,)
    folder = model_root / "models/init"
    source = f"built-in defaults (no {model_root / 'none.yaml'}, {folder}/hildanext.json records none)"
    assert f"params: {source}" in out.stderr

def test_generate_uses_the_newest_model_folder(model_root):
    env = os.environ | {"PYTHONPATH": str(REPO / "src")}
    args = ["generate", "Hi", "--max-new-tokens", "4", "--chat", "--set", "decode.block_size=8"]
    ok = subprocess.run([sys.executable, "-m", "hildanext", *args], cwd=model_root, env=env, capture_output=True,
                        text=True, timeout=300)
    assert ok.returncode == 0 and SUMMARY.search(ok.stdout.splitlines()[-1]) and "models/init mode params" in ok.stdout
    lines = ok.stderr.splitlines()
    warning = "decode block size 8 differs from the model's trained block size 1; decoding with 8"
    assert lines[0] == "params: built-in defaults (no params.yaml, models/init/hildanext.json records none)"
    assert warning in lines and ok.stderr.count("differs from the model's trained block size") == 1

@pytest.fixture
def outside_checkout(model_root, tmp_path, monkeypatch):
    """models/sft and models/export (whose hildanext.json records block size 4 and params), no params.yaml."""
    for name in ("sft", "export"):
        shutil.copytree(model_root / "models/init", tmp_path / "models" / name)
    meta_path = tmp_path / "models/export/hildanext.json"
    recorded = as_dict(load_params(REPO / "params.yaml", ["decode.max_new_tokens=2"]))
    meta_path.write_text(json.dumps(json.loads(meta_path.read_text()) | {"block_size": 4, "params": recorded}))
    monkeypatch.chdir(tmp_path)
    return tmp_path

def test_generate_picks_models_export_first_and_reads_its_recorded_params(outside_checkout):
    out = CliRunner().invoke(app, ["generate", "Once upon a time", "--trace"])
    lines = out.stdout.strip().splitlines()
    summary = SUMMARY.search(lines[-1])
    assert out.exit_code == 0 and lines[-1].startswith("models/export mode params: ") and 0 < int(summary[3]) <= 2
    assert "params: models/export/hildanext.json (no params.yaml here)" in out.stderr
    assert lines[0].startswith("block 1 step 0: ") and not any(line.startswith("block 0 ") for line in lines)
    shutil.copy(REPO / "params.yaml", outside_checkout / "params.yaml")
    again = CliRunner().invoke(app, ["generate", "Once upon a time", "--max-new-tokens", "3"])
    assert again.exit_code == 0 and again.stdout.strip().splitlines()[-1].startswith("models/export mode params: ")
    assert "params: params.yaml" in again.stderr and int(SUMMARY.search(again.stdout)[3]) == 3

def test_generate_without_a_model_folder_fails_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["generate", "Hi"])
    assert out.exit_code == 2 and out.stderr.strip().count("\n") == 0
    assert "none of models/export, models/sft, models/merged, models/init exists" in out.stderr

@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_static_block_forward_equals_the_windowed_cache(attn):
    model = make_tiny_qwen3(vocab_size=64, attn=attn, seed=3).double()
    prompt = torch.randint(0, 60, (11,), generator=torch.Generator().manual_seed(4)).tolist()
    common = {"mask_id": 63, "eos_id": 62, "block_size": 8, "tau_mask": 0.05, "tau_edit": 0.0, "max_post_steps": 3,
              "max_new_tokens": 21, "eos_early_stop": False}
    windowed = run_decoder(model, prompt, **common)
    static = run_decoder(model, prompt, cuda_graphs=True, **common)
    assert static.ids == windowed.ids and static.trace == windowed.trace
    assert static.stats.forwards == windowed.stats.forwards

@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
@pytest.mark.parametrize("shift, prompt_len", [(False, 11), (True, 11), (True, 3)])
def test_cuda_graph_path_equals_eager_on_gpu(shift, prompt_len):
    model = make_tiny_qwen3(vocab_size=64, seed=3).cuda()
    prompt = list(range(5, 5 + prompt_len))
    common = {"mask_id": 63, "eos_id": 62, "block_size": 8, "tau_mask": 0.05, "tau_edit": 0.0, "max_post_steps": 3,
              "max_new_tokens": 21, "eos_early_stop": False, "shift": shift}
    assert run_decoder(model, prompt, cuda_graphs=True, **common).ids == run_decoder(model, prompt, **common).ids
