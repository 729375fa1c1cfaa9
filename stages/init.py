# DVC stage init: model.base (demo or a local Qwen3 folder) -> models/init with <|mask|> added and ids recorded.
# Same library call as `hildanext init`: hildanext.pipeline.run_stage("init").
# Run: python -P stages/init.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("init")
