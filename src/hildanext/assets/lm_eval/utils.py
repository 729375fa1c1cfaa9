# lm-eval hooks of the shipped hildanext tasks (the YAMLs beside this file; lm-eval loads it by path):
# story_results + gen_ppl_under_scorer (Gen PPL of the continuations under the causal model in $HILDANEXT_SCORER,
# loaded once, and the repeated word 4-gram share), humaneval_results (pass@1 through hildanext's sandbox).
# Entry points: story_results, gen_ppl_under_scorer, repetition_4, scorer, humaneval_results.
import math, os
from dataclasses import fields
from functools import cache
from pathlib import Path
from hildanext.config import RuntimeParams
from hildanext.eval import bench, codeeval
from hildanext.eval.tasks import SCORER_ENV
from hildanext.model import ModelFolderError, load_model
CODE_TIMEOUT_S, CODE_MEMORY_MB = 3.0, 512
def repetition_4(text: str) -> float:
    """Share of repeated word 4-grams (1 - distinct / all); 0 for a text under 4 words."""
    grams = bench.ngrams(text.split(), 4)
    return 1 - len(set(grams)) / len(grams) if grams else 0.0

def story_results(doc: dict, results: list[str]) -> dict:
    return {"gen_ppl": (doc["prompt"], results[0]), "repetition_4": repetition_4(results[0])}

@cache
def load_scorer(folder: str):
    try:
        return load_model(Path(folder), RuntimeParams())
    except ModelFolderError as e:
        raise RuntimeError(f"{SCORER_ENV}={folder} is not a causal model folder ({e})") from e

def scorer():
    """The causal model and tokenizer of the folder named by $HILDANEXT_SCORER (loaded once per folder)."""
    folder = os.environ.get(SCORER_ENV, "")
    if not folder:
        raise RuntimeError(f"{SCORER_ENV} is unset: set it to the AR base model folder that scores Gen PPL")
    return load_scorer(folder)

def gen_ppl_under_scorer(items: list[tuple[str, str]]) -> float:
    """exp of the token-weighted mean NLL of each continuation given its prompt; NaN when all are empty."""
    model, tokenizer = scorer()
    ids = [[tokenizer(text, add_special_tokens=False)["input_ids"] for text in pair] for pair in items]
    prompts, continuations = [p for p, _ in ids], [c for _, c in ids]
    return bench.gen_ppl(model, prompts, continuations) if any(continuations) else math.nan

def humaneval_results(doc: dict, results: list[str]) -> dict:
    task = codeeval.CodeTask(**{f.name: doc[f.name] for f in fields(codeeval.CodeTask)})
    run = codeeval.run_body(task, results[0], CODE_TIMEOUT_S, CODE_MEMORY_MB)
    return {"pass@1": float(run.status == "passed")}
