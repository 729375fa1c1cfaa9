# Chat records for SFT: OpenAI `messages` JSON Lines from local paths or globs (.jsonl[.gz|.zst]) and a
# built-in instruction set derived from the demo story corpus, as Chat(messages, source). Bad records are
# skipped and counted by reason; a missing file or an empty glob raises DataError naming it.
# Entry points: chat_messages(record, reserved), read_chat_jsonl(path, skips, reserved), demo_chats(n, seed),
# iter_chats(p, skips, reserved) (every sft_data.sources entry in order; "demo" = the built-in set).
import glob, json, random, re
from collections import Counter
from pathlib import Path
from typing import Iterator, NamedTuple
from hildanext.config import SftDataParams
from hildanext.data.demo_corpus import iter_demo_stories, story_parts
from hildanext.data.prepare import normalise
from hildanext.data.sources import DataError, decode, raw_lines
ROLES, MAX_LINE_BYTES = ("system", "user", "assistant"), 64_000_000
SYSTEM_PROMPT = "You are a friendly storyteller for young children."
DEMO_KINDS = ("story", "story_with_system", "continue", "another", "title", "who")
class Chat(NamedTuple):
    messages: tuple[dict, ...]
    source: str

def check_message(message, reserved) -> dict | str:
    """The normalised {role, content} of one message, or the skip reason."""
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        return "unknown_role"
    if not isinstance(message.get("content"), str):
        return "non_string_content"
    content = normalise(message["content"])
    if not content:
        return "empty_content"
    if any(token in content for token in reserved):
        return "reserved_token"
    return {"role": message["role"], "content": content}

def chat_messages(record, reserved=frozenset()) -> tuple[dict, ...] | str:
    """Messages up to the last assistant turn, or the skip reason; `reserved` strings may not occur in content."""
    messages = record.get("messages") if isinstance(record, dict) else None
    if not isinstance(messages, list) or not messages:
        return "missing_messages"
    checked = [check_message(m, reserved) for m in messages]
    if bad := next((c for c in checked if isinstance(c, str)), None):
        return bad
    roles = [m["role"] for m in checked]
    if "assistant" not in roles:
        return "no_assistant_turn"
    if "user" not in roles[: roles.index("assistant")]:
        return "assistant_before_user"
    last = len(roles) - 1 - roles[::-1].index("assistant")
    return tuple(checked[: last + 1])

def parse_chat_line(line: bytes, reserved) -> tuple[dict, ...] | str:
    if (text := decode(line)) is None:
        return "non_utf8"
    try:
        record = json.loads(text)
    except json.JSONDecodeError:
        return "invalid_json"
    return chat_messages(record, reserved)

def read_chat_jsonl(path: Path, skips: Counter, reserved=frozenset()) -> Iterator[Chat]:
    for line in raw_lines(path, MAX_LINE_BYTES, skips):
        if line is None or not line.strip():
            continue
        messages = parse_chat_line(line, reserved)
        if isinstance(messages, str):
            skips[messages] += 1
            continue
        yield Chat(messages, path.name)

def first_word(text: str, words: list[str]) -> str | None:
    hits = [(m.start(), w) for w in words if (m := re.search(rf"\b{re.escape(w)}\b", text))]
    return min(hits)[1] if hits else None

def story_topic(story: str, name: str, animal: str | None) -> str:
    article = "an" if animal and animal[0] in "aeiou" else "a"
    if animal and re.search(rf"\b{animal} (?:named|called) {name}\b", story):
        return f"{article} {animal} named {name}"
    return f"{name} and {article} {animal}" if animal else name

def demo_turns(kind: str, story: str, other: str, parts: dict) -> list[tuple[str, str]]:
    """(role, content) turns of one demo conversation of the given kind around `story` (and `other`)."""
    name, animal, thing = (first_word(story, parts[k]) for k in ("names", "animals", "objects"))
    ask = ("user", f"Write a short story about {story_topic(story, name, animal)}.")
    opening, _, rest = story.partition(". ")
    if kind == "continue" and rest:
        return [("user", f"Continue this story: {opening}."), ("assistant", rest)]
    title = f"{name} and the {thing.title()}" if thing else f"The Story of {name}"
    follow = {"another": [("user", "Tell me another one."), ("assistant", other)],
              "title": [("user", "Give it a title."), ("assistant", title)],
              "who": [("user", "Who is the main character?"), ("assistant", f"The main character is {name}.")]}
    system = [("system", SYSTEM_PROMPT)] if kind == "story_with_system" else []
    return system + [ask, ("assistant", story)] + follow.get(kind, [])

def demo_chats(n: int, seed: int) -> list[Chat]:
    """n instruction conversations built from demo stories; the same (n, seed) always gives the same list."""
    rng, parts, stories = random.Random(seed), story_parts(), iter_demo_stories(2 * n, seed)
    chats = []
    for _ in range(n):
        kind = rng.choice(DEMO_KINDS)
        story, other = next(stories), next(stories) if kind == "another" else ""
        chats.append(Chat(tuple({"role": r, "content": c} for r, c in demo_turns(kind, story, other, parts)), "demo"))
    return chats

def source_paths(entry: str) -> list[Path]:
    """The files of one sources entry, a path or glob relative to the working directory."""
    if re.search(r"[*?[]", entry):
        found = sorted(Path(m) for m in glob.glob(entry, recursive=True))
        if not found:
            raise DataError(f"sft_data.sources: {entry!r} matches no file")
        return found
    if not Path(entry).is_file():
        raise DataError(f"sft_data.sources: {Path(entry).absolute()}: no such file")
    return [Path(entry)]

def iter_chats(p: SftDataParams, skips: Counter, reserved=frozenset()) -> Iterator[Chat]:
    paths = {entry: source_paths(entry) for entry in p.sources if entry != "demo"}
    for entry in p.sources:
        if entry == "demo":
            yield from demo_chats(p.demo_examples, p.demo_seed)
            continue
        for path in paths[entry]:
            yield from read_chat_jsonl(path, skips, reserved)
