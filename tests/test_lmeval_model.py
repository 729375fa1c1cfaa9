# The "hildanext" lm-eval model and its block ELBO (eval/likelihood.py): a hand computation on a scripted model
# with fixed masks (shift on and off), equality with lm-eval's own HFLM at block size 1 with the token shift in
# float64 (loglikelihood, is_greedy, rolling), the Monte Carlo spread shrinking with mc_num, the right
# continuation ranked first, rolling windows written out by hand, model_args errors and registration, and
# batched generate_until giving the one-at-a-time strings (per-request stop strings) with per-task counts, and
# both models' generation counts (prefill forwards apart, TPF without them) against hand counts.
import math
from types import SimpleNamespace
import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM
from hildanext.config import Params, ParamsError
from hildanext.decode.engines import DiffusionEngine
from hildanext.eval.harness import CountingHFLM, HildanextLM, harness_args, task_rows
from hildanext.eval.likelihood import (ElboSpec, continuation_spans, elbo_loglik, masked_loglik,
                                       stratified_counts)
from hildanext.model import load_model, read_model_info
LONG = "Once upon a time, a little dog ran to the park with his best friend and they played all day. " * 3
class Scripted(torch.nn.Module):
    """Hidden state = one-hot of the input token, logits = table @ hidden: position p scores table[:, token at p]."""
    def __init__(self, table: torch.Tensor):
        super().__init__()
        size = table.shape[0]
        self.embed = torch.nn.Embedding.from_pretrained(torch.eye(size, dtype=torch.float64))
        self.head = torch.nn.Linear(size, size, bias=False).double()
        self.head.weight.data = table.clone()
        self.config = SimpleNamespace(_attn_implementation="sdpa")
        self.base_model = lambda inputs_embeds, **_: SimpleNamespace(last_hidden_state=inputs_embeds)
    def get_input_embeddings(self):
        return self.embed
    def get_output_embeddings(self):
        return self.head

def column_ce(table, column: int, target: int) -> float:
    return float(F.cross_entropy(table[:, column][None], torch.tensor([target])))

def test_spans_follow_the_absolute_grid_and_counts_are_stratified():
    assert continuation_spans(3, 11, 4) == [(3, 4), (4, 8), (8, 11)]
    assert continuation_spans(4, 6, 4) == [(4, 6)]
    counts = stratified_counts(8, 4, torch.Generator().manual_seed(0))
    assert sorted((counts - counts.min()).tolist()) == [0, 2, 4, 6] or sorted(counts.tolist()) == [1, 3, 5, 7]
    assert all(1 <= k <= 5 for k in stratified_counts(5, 13, torch.Generator().manual_seed(3)).tolist())

@pytest.mark.parametrize("shift", [False, True])
def test_masked_loglik_equals_a_hand_computation(shift):
    table = torch.randn(8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask_id, ids = 7, [5, 1, 2, 3, 4]
    masked = torch.tensor([[0, 1, 0, 1, 0], [0, 0, 1, 1, 1]], dtype=torch.bool)
    weight = torch.tensor([[0, 1, 2, 2, 1], [0, 1, 1, 1, 1]], dtype=torch.float64)
    got = masked_loglik(Scripted(table), ids, masked, weight, ElboSpec(mask_id, block_size=2, shift=shift))
    if shift:  # p reads p - 1: the noisy copy inside a block, the clean x_0 copy at a block's first position
        first = column_ce(table, 5, 1) + 2 * column_ce(table, 2, 3)
        second = column_ce(table, 1, 2) + column_ce(table, mask_id, 3) + column_ce(table, 3, 4)
    else:
        first = column_ce(table, mask_id, 1) + 2 * column_ce(table, mask_id, 3)
        second = sum(column_ce(table, mask_id, target) for target in (2, 3, 4))
    assert torch.allclose(got, torch.tensor([-first, -second], dtype=torch.float64), atol=1e-12)

def test_the_model_that_puts_its_mass_on_the_right_continuation_ranks_it_first():
    table = torch.full((8, 8), -30.0, dtype=torch.float64)
    for token in range(6):
        table[token + 1, token] = 30.0
    table[:, 7] = 0.0
    spec = ElboSpec(7, block_size=2, shift=True, mc_num=8, batch_size=4)
    scores = [elbo_loglik(Scripted(table), [0], cont, spec) for cont in ([1, 2, 3, 4], [1, 3, 2, 4], [4, 3, 2, 1])]
    assert scores[0] == max(scores) and scores[0] > scores[1] + 10 and scores[0] > scores[2] + 10

@pytest.fixture
def double_model(model_dir):
    model, tokenizer = load_model(model_dir, Params().runtime)
    return model.double(), tokenizer

def shifted_lm(model, tokenizer, model_dir, **args) -> HildanextLM:
    info = read_model_info(None, tokenizer, block_size=1)
    info = type(info)(info.eos_id, info.mask_id, info.stop_ids, info.pad_id, 1, True)
    engine = DiffusionEngine(model, tokenizer, Params(), model_dir, info)
    return HildanextLM(engine=engine, pretrained=str(model_dir), **args)

def instances(kind: str, arguments: list[tuple]) -> list[Instance]:
    return [Instance(kind, {}, args, i, ("toy", i, 1)) for i, args in enumerate(arguments)]

def test_block_one_with_shift_equals_hflm_on_the_ar_base_in_float64(double_model, model_dir):
    model, tokenizer = double_model
    ours, theirs = shifted_lm(model, tokenizer, model_dir, mc_num=3), HFLM(pretrained=model, tokenizer=tokenizer)
    prompt = tokenizer.encode("Once upon a time")
    greedy = model.generate(torch.tensor([prompt]), max_new_tokens=4, do_sample=False)[0, len(prompt) :].tolist()
    pairs = [("Once upon a time", " there was a cat."), ("The dog", " ran home"), ("Once upon a time",
             tokenizer.decode(greedy))]
    mine, reference = ours.loglikelihood(instances("loglikelihood", pairs)), theirs.loglikelihood(
        instances("loglikelihood", pairs))
    assert [g for _, g in mine] == [g for _, g in reference] and mine[2][1]
    assert all(math.isclose(a, b, rel_tol=0, abs_tol=1e-9) for (a, _), (b, _) in zip(mine, reference, strict=True))
    docs = instances("loglikelihood_rolling", [("Once upon a time there was a little dog who liked to run.",)])
    ours, theirs = shifted_lm(model, tokenizer, model_dir, max_length=6), HFLM(pretrained=model,
                                                                             tokenizer=tokenizer, max_length=6)
    assert math.isclose(ours.loglikelihood_rolling(docs)[0], theirs.loglikelihood_rolling(docs)[0], abs_tol=1e-9)

def test_rolling_bound_is_the_sum_over_the_windows_written_by_hand(double_model, model_dir):
    model, tokenizer = double_model
    lm = shifted_lm(model, tokenizer, model_dir, max_length=8, block_size=4, mc_num=4)
    text = "Once upon a time there was a little dog. The dog liked to run in the park with his friend."
    tokens, prefix = lm.tok_encode(text), lm.prefix_token_id
    assert len(tokens) > 16
    windows = [([prefix], tokens[:8])] + [([tokens[end - 9]], tokens[end - 8 : end]) for end in
                                          range(16, len(tokens) + 1, 8)]
    done = 8 * (len(windows))
    if done < len(tokens):
        windows.append((tokens[len(tokens) - 9 : done], tokens[done:]))
    assert sum(len(c) for _, c in windows) == len(tokens)
    expected = sum(elbo_loglik(model, c, t, lm.spec) for c, t in windows)
    got = lm.loglikelihood_rolling(instances("loglikelihood_rolling", [(text,)]))[0]
    assert math.isclose(got, expected, abs_tol=1e-9)

def test_monte_carlo_spread_shrinks_as_mc_num_grows(model_dir):
    model, tokenizer = load_model(model_dir, Params().runtime)
    context, continuation = tokenizer.encode("Once upon a time"), tokenizer.encode(" there was a little dog who ran")
    def spread(draws: int) -> float:
        values = [elbo_loglik(model, context, continuation, ElboSpec(tokenizer.mask_token_id, 4, True, draws, 16, s))
                  for s in range(6)]
        return float(torch.tensor(values).std())
    few, many = spread(2), spread(32)
    assert many < few / 2

def test_model_args_errors_name_the_key_and_lm_eval_strings_convert():
    args = harness_args({"pretrained": "models/export", "mc_num": 8, "batch_size": "auto", "max_batch_size": None})
    assert args.mc_num == 8 and args.batch_size == 16
    with pytest.raises(ParamsError, match="mc_numm"):
        harness_args({"pretrained": "x", "mc_numm": 3})
    with pytest.raises(ParamsError, match="mode"):
        harness_args({"pretrained": "x", "mode": "Z"})

def test_import_hildanext_registers_both_models():
    import hildanext  # noqa: F401
    from lm_eval.api.registry import get_model
    assert get_model("hildanext") is HildanextLM
    assert get_model("hf-counted").__mro__[2] is HFLM

def test_hf_counted_generations_count_one_prefill_per_request_and_leave_it_out_of_tpf(double_model):
    model, tokenizer = double_model
    lm = CountingHFLM(pretrained=model, tokenizer=tokenizer, batch_size=1)
    prompts = [tokenizer.encode(p, add_special_tokens=False) for p in ("Once upon a time", "The dog")]
    new = [len(model.generate(torch.tensor([p]), max_new_tokens=5, do_sample=False)[0]) - len(p) for p in prompts]
    kwargs = {"until": ["@@@"], "max_gen_toks": 5, "do_sample": False}
    texts = lm.generate_until(instances("generate_until", [(tokenizer.decode(p), kwargs) for p in prompts]))
    counts = task_rows(lm.meter)["toy"]["generate_until"]
    tokens = sum(len(tokenizer.encode(t, add_special_tokens=False)) for t in texts)
    assert (counts["requests"], counts["prefill_forwards"], counts["forwards"]) == (2, 2, sum(new))
    assert counts["tokens"] == tokens and counts["tpf"] == tokens / (sum(new) - 2)

@pytest.fixture
def shipped_cwd(tmp_path, monkeypatch, model_dir):
    from hildanext.data.demo_corpus import demo_stories
    from hildanext.eval.tasks import SCORER_ENV, write_task_data
    write_task_data(demo_stories(40, 7), tmp_path / "data/eval", 3, 0)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(SCORER_ENV, str(model_dir))
    return tmp_path

def test_lm_eval_evaluator_runs_the_shipped_tasks_with_the_hildanext_model(shipped_cwd, model_dir):
    from lm_eval import simple_evaluate
    from hildanext.eval.harness import task_rows
    from hildanext.eval.tasks import TASK_FILES, task_manager
    lm = HildanextLM(pretrained=str(model_dir), mc_num=2, batch_size=2, max_gen_toks=8)
    out = simple_evaluate(model=lm, tasks=["hildanext_demo"], task_manager=task_manager(), limit=2, bootstrap_iters=0,
                          log_samples=False, confirm_run_unsafe_code=True)
    results = out["results"]
    assert set(TASK_FILES) <= set(results)
    assert 0 <= results["hildanext_story_choice"]["acc,none"] <= 1 and results["hildanext_story"]["gen_ppl,none"] > 1
    assert results["hildanext_rolling"]["word_perplexity,none"] > 1
    assert results["hildanext_humaneval"]["pass@1,none"] == 0
    rows = task_rows(lm.meter)
    assert rows["hildanext_story_choice"]["loglikelihood"]["requests"] == 2 * 4
    story = rows["hildanext_story"]["generate_until"]
    assert story["requests"] == 2 and story["forwards"] > story["prefill_forwards"] >= 0
    assert story["tpf"] == story["tokens"] / (story["forwards"] - story["prefill_forwards"])

@pytest.mark.slow
def test_hildanext_lm_eval_command_runs_the_readme_command(shipped_cwd, model_dir):
    import json, subprocess, sys
    from pathlib import Path
    cli = Path(sys.executable).parent / "hildanext"
    cmd = [str(cli), "lm-eval", "--model", "hildanext", "--model_args", f"pretrained={model_dir},mc_num=2,mode=S",
           "--tasks", "hildanext_story_choice", "--limit", "2", "--output_path", "out"]
    done = subprocess.run(cmd, cwd=shipped_cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads(next((shipped_cwd / "out").rglob("results_*.json")).read_text())
    assert 0 <= saved["results"]["hildanext_story_choice"]["acc,none"] <= 1
    assert saved["config"]["model"] == "hildanext"

def test_batched_generate_until_returns_the_one_at_a_time_strings_and_counts_per_task(double_model, model_dir):
    model, tokenizer = double_model
    lm = HildanextLM(engine=DiffusionEngine(model, tokenizer, Params(), model_dir), pretrained=str(model_dir),
                     batch_size=2)
    free = lm.engine.complete(lm.request_for("Once upon a time", {"max_gen_toks": 16})).text
    cut = free[3:6]
    arguments = [("Once upon a time", {"until": [cut], "max_gen_toks": 16}), ("The dog", {"max_gen_toks": 6}),
                 ("Once upon a time", {"max_gen_toks": 16}), ("A cat sat", {"until": ["\n\n"], "max_gen_toks": 9}),
                 ("Tom", {"max_gen_toks": 12}), (LONG, {"max_gen_toks": 5})]
    tasks = ["first", "second", "first", "second", "first", "second"]
    requests = [Instance("generate_until", {}, args, i, (task, i, 1))
                for i, (args, task) in enumerate(zip(arguments, tasks, strict=True))]
    done = [lm.engine.complete(lm.request_for(context, kwargs)) for context, kwargs in arguments]
    alone = [c.text for c in done]
    got = lm.generate_until(requests)
    assert got == alone and got[0] == free[: free.find(cut)] and got[2] == free
    rows = task_rows(lm.meter)
    for task in ("first", "second"):
        mine = [text for text, t in zip(got, tasks, strict=True) if t == task]
        counts = rows[task]["generate_until"]
        stats = [c.result.stats for c, t in zip(done, tasks, strict=True) if t == task]
        prefills = sum(s.prefill_forwards for s in stats)
        assert counts["requests"] == len(mine) and counts["prefill_forwards"] == prefills
        assert counts["forwards"] == prefills + sum(s.forwards + s.cache_forwards for s in stats)
        assert counts["tpf"] == counts["tokens"] / sum(s.forwards + s.cache_forwards for s in stats)
        assert counts["tokens"] == sum(len(tokenizer.encode(text, add_special_tokens=False)) for text in mine)
    assert rows["second"]["generate_until"]["prefill_forwards"] >= 1
