# The Qwen3-0.6B shape and token-id layout shared by the benchmark scripts that run random weights of that size
# (imported as `from qwen3_shape import ...`; the scripts run as `python benchmarks/<script>.py`). Ids: Qwen3's
# added tokens start at <|endoftext|> = FIRST_SPECIAL_ID, and add_mask_token appends <|mask|> after them.
# Entry points: QWEN3_06B (Qwen3Config keyword arguments), FIRST_SPECIAL_ID, EOS_ID, MASK_ID, SPECIAL_IDS.
QWEN3_06B = {"vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
             "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "tie_word_embeddings": True}
FIRST_SPECIAL_ID = 151643
EOS_ID = FIRST_SPECIAL_ID
MASK_ID = 151669
SPECIAL_IDS = list(range(FIRST_SPECIAL_ID, QWEN3_06B["vocab_size"]))
