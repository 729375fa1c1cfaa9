# Teacher data for distillation: openings cut from train-split documents (at a sentence end or mid-sentence, a
# few tokens to a long context), prompts of train-split SFT chats, the AR teacher's batched HF generate over them
# in shards (JSON, atomic, seeded per shard so a rerun skips finished shards and repeats the rest exactly), and
# the examples (prompt visible, teacher text supervised, block-padded) packed as SFT rows. Entry points:
# sentence_cuts, cut_opening, openings, answer_prompts, generate_shard, split_of, pack_examples, DistillShards.
import hashlib, re, time
import numpy as np
import torch
from hildanext.config import DistillDataParams
from hildanext.data.chat import Chat
from hildanext.data.sft_data import PAD, TURN_END, SftPacker, SftShards
from hildanext.data.sources import DataError
SENTENCE_END = re.compile(r"[.!?][\"')\]]*(?=\s|$)")
def sentence_cuts(offsets: list[tuple[int, int]], text: str) -> list[int]:
    """Token counts k whose prefix ends exactly at a sentence end of text."""
    ends = {m.end() for m in SENTENCE_END.finditer(text)}
    return [k + 1 for k, (_, end) in enumerate(offsets) if end in ends]

def cut_opening(ids: list[int], cuts: list[int], p: DistillDataParams, rng: np.random.Generator) -> tuple | None:
    """(opening ids, "sentence" | "mid") of p.opening_tokens length, or None when the document is too short."""
    low, high = p.opening_tokens
    high = min(high, len(ids) - 1)
    if high < low:
        return None
    fitting = [k for k in cuts if low <= k <= high]
    if fitting and rng.random() < p.sentence_share:
        return ids[: fitting[rng.integers(len(fitting))]], "sentence"
    return ids[: int(rng.integers(low, high + 1))], "mid"

def openings(texts: list[str], tokenizer, p: DistillDataParams) -> list[dict]:
    """p.continuations openings from texts (train split only), documents in a seeded order, reused when short."""
    if p.opening_tokens[0] > p.opening_tokens[1]:
        raise DataError(f"distill_data.opening_tokens {list(p.opening_tokens)}: low is above high")
    rng, found, tried = np.random.default_rng([p.seed, 1]), [], 0
    order = rng.permutation(len(texts)) if texts else np.zeros(0, int)
    while len(found) < p.continuations and tried < 4 * p.continuations + len(texts):
        text = texts[order[tried % len(texts)]] if texts else ""
        tried += 1
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        cut = cut_opening(enc["input_ids"], sentence_cuts(enc["offset_mapping"], text), p, rng) if text else None
        if cut is not None:
            found.append({"kind": "continuation", "cut": cut[1], "prompt": cut[0]})
    if len(found) < p.continuations:
        raise DataError(f"the train split: only {len(found)} openings of {p.opening_tokens[0]}+ tokens "
                        f"(distill_data.continuations asks {p.continuations})")
    return found

def answer_prompts(chats: list[Chat], tokenizer, count: int) -> list[dict]:
    """The chat up to its first assistant turn, rendered with the generation prompt (thinking off), for count chats."""
    found = []
    for chat in chats[:count]:
        head = list(chat.messages[: next(i for i, m in enumerate(chat.messages) if m["role"] == "assistant")])
        text = tokenizer.apply_chat_template(head, tokenize=False, add_generation_prompt=True, enable_thinking=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        found.append({"kind": "answer", "cut": "chat", "prompt": ids})
    return found

def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[rows, longest] ids with each prompt at the right end and its attention mask (the layout HF generate wants)."""
    width = max(len(p) for p in prompts)
    ids, mask = torch.full((len(prompts), width), pad_id, dtype=torch.long), torch.zeros(len(prompts), width).long()
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :], mask[row, width - len(prompt) :] = torch.as_tensor(prompt), 1
    return ids, mask

def stop_ids(tokenizer) -> list[int]:
    return [tokenizer.convert_tokens_to_ids(PAD), tokenizer.convert_tokens_to_ids(TURN_END)]

@torch.no_grad()
def generate_shard(teacher, tokenizer, prompts: list[dict], p: DistillDataParams, seed: int) -> dict:
    """The teacher's text for each prompt (cut after its first stop token, which it keeps), with tokens and seconds."""
    torch.manual_seed(seed)
    stops, mask_id = stop_ids(tokenizer), tokenizer.mask_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]["prompt"]))
    sampling = {"do_sample": True, "temperature": p.temperature, "top_k": 0} if p.temperature else {"do_sample": False}
    suppress = [mask_id] if mask_id is not None and mask_id < teacher.config.vocab_size else None
    outputs, started, device = [None] * len(prompts), time.perf_counter(), teacher.get_input_embeddings().weight.device
    for start in range(0, len(order), p.batch_size):
        batch = order[start : start + p.batch_size]
        ids, mask = left_padded([prompts[i]["prompt"] for i in batch], stops[0])
        out = teacher.generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=p.new_tokens,
                               eos_token_id=stops, pad_token_id=stops[0], suppress_tokens=suppress, **sampling)
        for row, i in enumerate(batch):
            new = out[row, ids.shape[1] :].tolist()
            end = next((k + 1 for k, tok in enumerate(new) if tok in stops), len(new))
            outputs[i] = prompts[i] | {"output": new[:end]}
    seconds = time.perf_counter() - started
    return {"records": outputs, "tokens": sum(len(r["output"]) for r in outputs), "seconds": seconds}

def teacher_examples(record: dict, block_size: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(ids, supervised) of one record: prompt visible, teacher text supervised, padded to a block multiple."""
    prompt, output = record["prompt"], record["output"]
    pad = (-(len(prompt) + len(output))) % block_size
    ids = np.asarray(prompt + output + [pad_id] * pad, np.uint32)
    return ids, np.concatenate([np.zeros(len(prompt), bool), np.ones(len(output) + pad, bool)])

def split_of(index: int, p: DistillDataParams) -> str:
    digest = hashlib.blake2b(f"{p.seed}:{index}".encode(), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "big") / 2**64 < p.eval_fraction else "train"

def pack_examples(records: list[dict], seq_len: int, block_size: int, pad_id: int, out) -> dict:
    """Pack records into out/<split>.*.bin by record["split"]; per-split stats and the skipped count."""
    packers = {s: SftPacker(out, s, seq_len, pad_id) for s in ("train", "eval")}
    skipped = 0
    for record in records:
        ids, supervised = teacher_examples(record, block_size, pad_id)
        if len(ids) > seq_len or not record["output"]:
            skipped += 1
            continue
        packers[record["split"]].add(ids, supervised)
    return {s: packer.close() for s, packer in packers.items()} | {"skipped": skipped}

class DistillShards(SftShards):
    """data/distill rows: the SFT row format (input_ids, doc_ids, supervised) with the teacher text supervised."""
    stage = "distill_data"
