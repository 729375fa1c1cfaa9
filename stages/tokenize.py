# DVC stage tokenize: data/processed -> data/tokenized packed rows with document ids, using models/init's tokenizer.
# Same library call as `hildanext tokenize`: hildanext.pipeline.run_stage("tokenize").
# Run: python -P stages/tokenize.py (-P: stages/ must not shadow stdlib modules such as tokenize).
from hildanext.pipeline import run_stage
if __name__ == "__main__":
    run_stage("tokenize")
