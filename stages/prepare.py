# DVC stage prepare: raw sources (prepare.sources; the demo corpus by default) -> data/processed/{train,eval}.parquet.
# Same library call as `hildanext prepare`: hildanext.pipeline.run_stage("prepare").
# Run: python -P stages/prepare.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("prepare")
