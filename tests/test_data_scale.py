# Constant memory: prepare + tokenize of N and 4N documents in fresh processes; peak RSS must barely change
# (a pipeline holding documents or token lists in memory would grow by tens of MB here). Slow. The only O(N)
# state is the exact-dedup seen-set (~100 bytes per unique document, in DESIGN.md); pyarrow's jemalloc pool
# caches freed memory (+20 MB, flat beyond 80k documents), so the system allocator is used to see our own growth.
import os, shutil, subprocess, sys
import pytest
pytestmark = pytest.mark.slow
DRIVER = """
import resource, sys
from hildanext.pipeline import run_stage
run_stage("prepare", "params.yaml", [f"prepare.demo_stories={sys.argv[1]}", "prepare.eval_fraction=0.01"])
run_stage("tokenize", "params.yaml", ["tokenize.batch_docs=1000"])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
def peak_rss_kb(workdir, docs: int) -> int:
    env = os.environ | {"ARROW_DEFAULT_MEMORY_POOL": "system"}
    cmd = [sys.executable, "-c", DRIVER, str(docs)]
    out = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])

def test_peak_rss_barely_changes_from_n_to_4n(workdir, qwen3_tokenizer_dir):
    shutil.copytree(qwen3_tokenizer_dir, workdir / "models/init")
    small, large = peak_rss_kb(workdir, 20_000), peak_rss_kb(workdir, 80_000)
    print(f"peak RSS: {small / 1024:.0f} MiB for 20k docs, {large / 1024:.0f} MiB for 80k docs")
    assert large - small < 12 * 1024
