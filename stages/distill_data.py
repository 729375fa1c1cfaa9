# DVC stage distill_data: the AR base writes continuations of train-split openings and answers to SFT prompts
# -> data/distill (resumable shards, packed rows). Same library call as `hildanext distill-data`:
# hildanext.pipeline.run_stage("distill_data"). Run: python -P stages/distill_data.py.
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("distill_data")
