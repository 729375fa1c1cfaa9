# The embedded demo corpus: a deterministic generator of short TinyStories-like stories (synthetic, made
# from templates in assets/demo_story_parts.json), so the demo pipeline runs offline.
# Entry points: iter_demo_stories(n, seed) (streaming), demo_stories(n, seed) -> list[str];
# write_demo_corpus(path, n, seed) (JSON Lines, marked synthetic).
import json, random
from importlib import resources
from pathlib import Path
from typing import Iterator
from hildanext.files import write_text_atomic
def story_parts() -> dict:
    return json.loads(resources.files("hildanext").joinpath("assets/demo_story_parts.json").read_text())

def fill(template: str, rng: random.Random, parts: dict, cast: dict) -> str:
    fresh = {"verb": rng.choice(parts["verbs"]), "adj": rng.choice(parts["adjectives"])}
    return template.format(**fresh, feeling=rng.choice(parts["feelings"]), **cast)

def demo_story(rng: random.Random, parts: dict) -> str:
    name, name2 = rng.sample(parts["names"], 2)
    cast = {"name": name, "name2": name2} | {k: rng.choice(parts[k + "s"]) for k in ("animal", "place", "object")}
    middles = rng.sample(parts["middles"], rng.randint(2, 4))
    templates = [rng.choice(parts["openings"]), *middles, rng.choice(parts["endings"])]
    return " ".join(fill(t, rng, parts, cast) for t in templates)

def iter_demo_stories(n: int, seed: int) -> Iterator[str]:
    rng, parts = random.Random(seed), story_parts()
    return (demo_story(rng, parts) for _ in range(n))

def demo_stories(n: int, seed: int) -> list[str]:
    return list(iter_demo_stories(n, seed))

def write_demo_corpus(path: Path, n: int, seed: int) -> list[str]:
    stories = demo_stories(n, seed)
    rows = [json.dumps({"id": f"demo-{i}", "text": s, "source": "demo-synthetic"}) for i, s in enumerate(stories)]
    write_text_atomic(Path(path), "\n".join(rows) + "\n")
    return stories
