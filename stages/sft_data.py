# DVC stage sft_data: chat JSONL (sft_data.sources; the built-in demo set by default) -> data/sft packed rows.
# Same library call as `hildanext sft-data`: hildanext.pipeline.run_stage("sft_data").
# Run: python -P stages/sft_data.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("sft_data")
