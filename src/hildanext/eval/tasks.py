# The shipped lm-eval tasks (assets/lm_eval/*.yaml, tag hildanext_demo) and the writer of their local data from
# held-out texts: story openings (generate_until, Gen PPL under the AR base named by HILDANEXT_SCORER), next
# sentence among distractors (multiple_choice), rolling perplexity, micro HumanEval (from the asset).
# Entry points: write_task_data, task_manager, sentence_pieces, TASKS_DIR, TASK_FILES, TAG, SCORER_ENV.
import json, random, re
from dataclasses import asdict
from pathlib import Path
from hildanext.eval.codeeval import ASSETS, load_tasks
from hildanext.files import write_text_atomic
TASKS_DIR = ASSETS / "lm_eval"
TAG = "hildanext_demo"
SCORER_ENV = "HILDANEXT_SCORER"
TASK_FILES = {"hildanext_story": "story.jsonl", "hildanext_story_choice": "story_choice.jsonl",
              "hildanext_rolling": "rolling.jsonl", "hildanext_humaneval": "humaneval.jsonl"}
SENTENCE_GAP = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"'\u201d]))(\s+)")
DISTRACTORS = 3
def sentence_pieces(text: str) -> list[str]:
    """Sentences and the whitespace between them, alternating (split after . ! ? and an optional closing quote)."""
    return SENTENCE_GAP.split(text.strip())

def opening(pieces: list[str]) -> tuple[str, int]:
    """The first half of the sentences (at least one), verbatim, and how many sentences that is."""
    count = max(1, (len(pieces) + 1) // 4)
    return "".join(pieces[: 2 * count - 1]), count

def story_doc(pieces: list[str]) -> dict:
    prompt, count = opening(pieces)
    return {"prompt": prompt, "reference": "".join(pieces[2 * count :])}

def choice_doc(pieces: list[str], pool: list[str], rng: random.Random) -> dict | None:
    """Context = the opening, choices = its true next sentence and DISTRACTORS sentences of other texts."""
    context, count = opening(pieces)
    own = set(pieces[::2])
    others = [s for s in pool if s not in own]
    if len(others) < DISTRACTORS:
        return None
    choices, gold = rng.sample(others, DISTRACTORS), rng.randrange(DISTRACTORS + 1)
    choices.insert(gold, pieces[2 * count])
    return {"context": context, "choices": choices, "gold": gold}

def write_jsonl(path: Path, rows: list[dict]) -> int:
    if not rows:
        raise ValueError(f"{path.name}: no document could be made from the eval texts")
    write_text_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows)

def write_task_data(eval_texts: list[str], out_dir: Path, docs: int, seed: int) -> dict[str, int]:
    """Write out_dir/<TASK_FILES> from the first `docs` usable eval texts; returns docs per task and skipped_short."""
    split = [sentence_pieces(t) for t in eval_texts]
    usable = [p for p in split if len(p) >= 3]
    pool = list(dict.fromkeys(s for p in usable for s in p[::2]))
    rng = random.Random(seed)
    choices = [d for p in usable[:docs] if (d := choice_doc(p, pool, rng)) is not None]
    rolling = [{"text": t.strip()} for t in eval_texts if t.strip()][:docs]
    rows = {"hildanext_story": [story_doc(p) for p in usable[:docs]], "hildanext_story_choice": choices,
            "hildanext_rolling": rolling, "hildanext_humaneval": [asdict(t) for t in load_tasks()[:docs]]}
    counts = {name: write_jsonl(Path(out_dir) / TASK_FILES[name], r) for name, r in rows.items()}
    return counts | {"skipped_short": len(split) - len(usable)}

def task_manager(tasks=(TAG,)):
    """An lm-eval TaskManager over the shipped tasks; lm-eval's own tasks are indexed only when a name needs them."""
    from lm_eval.tasks import TaskManager
    shipped = {TAG, *TASK_FILES}
    return TaskManager(include_defaults=not set(tasks) <= shipped, include_path=str(TASKS_DIR))
