# SFT rows: renders chats with the tokenizer's chat template (thinking off), finds each assistant turn on the
# full rendered text (char offsets -> tokens), supervises assistant content + its <|im_end|> + the <|endoftext|>
# padding to a block multiple, and packs whole conversations block-aligned into seq_len rows as
# <split>.{input_ids,doc_ids,supervised}.bin. Entry points: assistant_spans, encode_chats, split_of, SftPacker,
# pack_chats, sft_manifest, load_chat_tokenizer, SftShards (read with ShardLoader).
import hashlib, itertools, json, re
from collections import Counter
from pathlib import Path
import numpy as np
from transformers import AutoTokenizer
from hildanext.config import SftDataParams
from hildanext.data.chat import Chat
from hildanext.data.loader import PackedShards
from hildanext.data.sources import DataError
SPLITS, PAD, TURN_END, ASSISTANT = ("train", "eval"), "<|endoftext|>", "<|im_end|>", "<|im_start|>assistant\n"
THINK_BLOCK, ENCODE_BATCH, OPEN_ROWS = re.compile(r"(<think>\s*</think>\s*)?"), 256, 16
def assistant_spans(text: str, messages) -> list[tuple[int, int]] | None:
    """[content start, end of its <|im_end|>) in `text` for every assistant turn; None if the render is unexpected."""
    spans, cursor = [], 0
    for message in messages:
        if message["role"] != "assistant":
            continue
        head = text.find(ASSISTANT, cursor)
        start = THINK_BLOCK.match(text, head + len(ASSISTANT)).end()
        end = start + len(message["content"])
        if head < 0 or not text.startswith(message["content"], start) or not text.startswith(TURN_END, end):
            return None
        spans.append((start, end + len(TURN_END)))
        cursor = spans[-1][1]
    return spans

def supervise(encoding, spans, block_size: int, pad_id: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Token ids and supervised flags padded to a block multiple; None if a token straddles a span edge."""
    ids, offsets = np.asarray(encoding.ids, np.uint32), np.asarray(encoding.offsets, np.int64).reshape(-1, 2)
    supervised = np.zeros(len(ids), bool)
    for start, end in spans:
        supervised |= (offsets[:, 0] >= start) & (offsets[:, 1] <= end)
        straddles = [np.any((offsets[:, 0] < edge) & (offsets[:, 1] > edge)) for edge in (start, end)]
        if any(straddles):
            return None
    pad = (-len(ids)) % block_size
    return np.concatenate([ids, np.full(pad, pad_id, np.uint32)]), np.concatenate([supervised, np.ones(pad, bool)])

def encode_chats(tokenizer, chats: list[Chat], block_size: int, pad_id: int,
                 skips: Counter) -> list[tuple[Chat, np.ndarray, np.ndarray]]:
    """(chat, ids, supervised) per chat; the text is cut after the last assistant <|im_end|> (no trailing newline)."""
    kept, texts = [], []
    for chat in chats:
        text = tokenizer.apply_chat_template(list(chat.messages), tokenize=False, enable_thinking=False)
        if (spans := assistant_spans(text, chat.messages)) is None:
            skips["template_mismatch"] += 1
            continue
        kept.append((chat, spans))
        texts.append(text[: spans[-1][1]])
    out = []
    encodings = tokenizer.backend_tokenizer.encode_batch(texts, add_special_tokens=False)
    for (chat, spans), encoding in zip(kept, encodings, strict=True):
        if (encoded := supervise(encoding, spans, block_size, pad_id)) is None:
            skips["token_straddles_span"] += 1
            continue
        out.append((chat, *encoded))
    return out

def chat_key(chat: Chat) -> bytes:
    return json.dumps(chat.messages, sort_keys=True, ensure_ascii=False).encode()

def split_of(chat: Chat, p: SftDataParams) -> str:
    digest = hashlib.blake2b(f"{p.split_seed}:".encode() + chat_key(chat), digest_size=8).digest()
    return "eval" if int.from_bytes(digest, "big") / 2**64 < p.eval_fraction else "train"

def unique(chats, skips: Counter):
    seen = set()
    for chat in chats:
        digest = hashlib.blake2b(chat_key(chat), digest_size=8).digest()
        if digest in seen:
            skips["duplicate"] += 1
            continue
        seen.add(digest)
        yield chat

class SftPacker:
    """First fit of whole examples (block multiples) into seq_len rows, at most OPEN_ROWS rows open at once."""
    def __init__(self, out: Path, split: str, seq_len: int, pad_id: int):
        self.files = {name: open(out / f"{split}.{name}.bin", "wb") for name in SftShards.arrays}
        self.seq_len, self.pad_id, self.open, self.docs = seq_len, pad_id, [], 0
        self.stats = Counter(rows=0, examples=0, tokens=0, supervised=0, block_pad=0, tail_pad=0)
    def add(self, ids: np.ndarray, supervised: np.ndarray) -> None:
        row = next((r for r in self.open if sum(map(len, r[0])) + len(ids) <= self.seq_len), None)
        if row is None:
            if len(self.open) == OPEN_ROWS:
                self.write(self.open.pop(0))
            row = ([], [])
            self.open.append(row)
        row[0].append(ids)
        row[1].append(supervised)
        block_pad = len(ids) - 1 - int(np.flatnonzero(ids != self.pad_id)[-1])
        self.stats.update(examples=1, tokens=len(ids), supervised=int(supervised.sum()), block_pad=block_pad)
    def write(self, row) -> None:
        lengths = list(map(len, row[0]))
        tail = self.seq_len - sum(lengths)
        doc_ids = np.repeat(np.arange(self.docs, self.docs + len(lengths), dtype=np.int32), lengths)
        self.files["input_ids"].write(np.concatenate([*row[0], np.full(tail, self.pad_id, np.uint32)]).tobytes())
        self.files["doc_ids"].write(np.concatenate([doc_ids, np.full(tail, -1, np.int32)]).tobytes())
        self.files["supervised"].write(np.concatenate([*row[1], np.zeros(tail, bool)]).astype(np.uint8).tobytes())
        self.docs += len(lengths)
        self.stats.update(rows=1, tail_pad=tail)
    def close(self) -> dict:
        for row in self.open:
            self.write(row)
        for f in self.files.values():
            f.close()
        pads, rows = self.stats["block_pad"] + self.stats["tail_pad"], self.stats["rows"]
        return dict(self.stats) | {"padding_share": pads / max(1, rows * self.seq_len)}

def load_chat_tokenizer(path: Path):
    if not (path / "tokenizer.json").is_file():
        raise DataError(f"{path}: no tokenizer.json (sft_data.tokenizer); run the init stage first")
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if not tokenizer.chat_template or tokenizer.convert_tokens_to_ids(PAD) in (None, tokenizer.unk_token_id):
        raise DataError(f"{path}: the SFT tokenizer needs a chat template and the {PAD} token")
    return tokenizer

def pack_chats(p: SftDataParams, block_size: int, chats, tokenizer, out: Path, skips: Counter) -> dict:
    """Pack unique chats that fit p.seq_len into <split>.*.bin under out; per-split packing stats."""
    pad_id = tokenizer.convert_tokens_to_ids(PAD)
    packers = {s: SftPacker(out, s, p.seq_len, pad_id) for s in SPLITS}
    chats = unique(chats, skips)
    while batch := list(itertools.islice(chats, ENCODE_BATCH)):
        for chat, ids, supervised in encode_chats(tokenizer, batch, block_size, pad_id, skips):
            if len(ids) > p.seq_len:
                skips["too_long"] += 1
                continue
            packers[split_of(chat, p)].add(ids, supervised)
    return {s: packers[s].close() for s in SPLITS}

def sft_manifest(tokenizer, tokenizer_sha256: str, seq_len: int, block_size: int, splits: dict, skips: Counter) -> dict:
    ids = {"pad_id": tokenizer.convert_tokens_to_ids(PAD), "turn_end_id": tokenizer.convert_tokens_to_ids(TURN_END),
           "mask_id": tokenizer.mask_token_id}
    head = {"format": "hildanext-sft/1", "seq_len": seq_len, "block_size": block_size,
            "tokenizer_sha256": tokenizer_sha256}
    supervised = "assistant content + <|im_end|> + <|endoftext|> block padding"
    return head | {"vocab_size": len(tokenizer), **ids, "splits": splits, "skipped": dict(skips),
                   "supervised": supervised}

class SftShards(PackedShards):
    """data/sft rows; batches from ShardLoader carry input_ids, doc_ids (int64) and supervised (bool)."""
    arrays = PackedShards.arrays | {"supervised": (np.uint8, np.bool_)}
    stage = "sft_data"
