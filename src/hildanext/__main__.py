# `python -m hildanext ...` runs the CLI; this is the form multi-process launchers take:
# `torchrun --nproc_per_node 2 -m hildanext wsd` or `accelerate launch --multi_gpu --num_processes 2 -m hildanext wsd`.
# Entry point: hildanext.cli.app.
from hildanext.cli import app
app()
