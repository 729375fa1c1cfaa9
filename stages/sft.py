# DVC stage sft: models/merged + data/sft -> models/sft by the LLaDA2.1 SFT mixture (M2T + T2T, MTF).
# Same library call as `hildanext sft`: hildanext.pipeline.run_stage("sft").
# Run: python -P stages/sft.py (-P: stages/ must not shadow stdlib modules).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("sft")
