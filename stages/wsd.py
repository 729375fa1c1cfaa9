# DVC stage wsd: models/init + data/tokenized -> models/wsd (checkpoints + final) by WSD conversion with M2T+T2T.
# Same library call as `hildanext wsd`: hildanext.pipeline.run_stage("wsd").
# Run: python -P stages/wsd.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("wsd")
