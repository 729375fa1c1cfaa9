# The demo tokenizer: a byte-level BPE trained locally on the demo corpus with Qwen3's pre-tokenizer split,
# special tokens and chat template, so the offline demo and the server's dummy model look like Qwen3 to the
# rest of the code. Entry points: train_demo_tokenizer(texts, vocab_size), chat_template, QWEN3_SPLIT.
from importlib import resources
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast
QWEN3_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
               r"""|\s*[\r\n]+|\s+(?!\S)|\s+""")
SPECIAL_TOKENS = (("<|endoftext|>", True), ("<|im_start|>", True), ("<|im_end|>", True), ("<think>", False),
                  ("</think>", False))
def chat_template() -> str:
    return resources.files("hildanext").joinpath("assets/qwen3_chat_template.jinja").read_text()

def train_demo_tokenizer(texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(QWEN3_SPLIT), "isolated"),
                                                 pre_tokenizers.ByteLevel(**byte_level)])
    tok.decoder, tok.post_processor = decoders.ByteLevel(**byte_level), processors.ByteLevel(**byte_level)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - len(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([AddedToken(t, special=s, normalized=False) for t, s in SPECIAL_TOKENS])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   model_max_length=32768)
    fast.chat_template = chat_template()
    return fast
