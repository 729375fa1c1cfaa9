# The sft_data stage (`hildanext sft-data`): chats from sft_data.sources (JSON Lines or the demo set) ->
# data/sft packed rows with assistant-only supervision, padded to the trained block size wsd.decay_to and
# checked against sft_data.tokenizer (models/init). Entry point: run(params, tracker).
from collections import Counter
from pathlib import Path
from hildanext.config import Params
from hildanext.data.chat import iter_chats
from hildanext.data.sft_data import SPLITS, load_chat_tokenizer, pack_chats, sft_manifest
from hildanext.data.sources import DataError
from hildanext.files import atomic_dir, sha256_file, write_json_atomic
from hildanext.pipeline import paths
def run(params: Params, tracker) -> dict:
    p, block, tokenizer_dir = params.sft_data, params.wsd.decay_to, Path(params.sft_data.tokenizer)
    if p.seq_len % block:
        raise DataError(f"sft_data.seq_len {p.seq_len} is not a multiple of wsd.decay_to {block}")
    tokenizer, skips = load_chat_tokenizer(tokenizer_dir), Counter()
    chats = iter_chats(p, skips, frozenset(tokenizer.get_added_vocab()))
    with atomic_dir(paths.SFT_DATA) as tmp:
        splits = pack_chats(p, block, chats, tokenizer, tmp, skips)
        if not splits["train"]["examples"]:
            raise DataError(f"sft_data.sources {list(p.sources)}: no usable conversation (skipped: {dict(skips)})")
        sha = sha256_file(tokenizer_dir / "tokenizer.json")
        write_json_atomic(tmp / "manifest.json", sft_manifest(tokenizer, sha, p.seq_len, block, splits, skips))
    return {f"{s}/{k}": v for s in SPLITS for k, v in splits[s].items()} | {f"skipped/{k}": v for k, v in skips.items()}
