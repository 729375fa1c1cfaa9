# Scale-out on CPU: two gloo processes under torchrun (accelerate's DDP wrapper around the diffusion forward)
# reach the same weights as one process accumulating the same global batch (2 x 2 micro-batches of 2 rows),
# after two optimizer steps of the shared loop. Slow (starts three Python processes).
import json, os, shutil, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import torch
from conftest import make_tiny_qwen3
from hildanext.data.packing import RowPacker
pytestmark = pytest.mark.slow
WORKER, SRC = Path(__file__).parent / "ddp_worker.py", Path(__file__).resolve().parents[1] / "src"
def write_shards(root: Path) -> Path:
    root.mkdir()
    packer = RowPacker(root, "train", 16)
    rng = np.random.default_rng(0)
    packer.add(rng.integers(0, 100, 16 * 24).astype(np.uint32), np.repeat(np.arange(48, dtype=np.int32), 8))
    packer.close(0)
    (root / "manifest.json").write_text(json.dumps({"seq_len": 16, "splits": {"train": {"rows": packer.rows}},
                                                    "tokenizer_sha256": "-", "vocab_size": 128}))
    return root

def test_two_processes_match_one_process_on_the_same_global_batch(tmp_path):
    shards = write_shards(tmp_path / "shards")
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join([str(WORKER.parent), str(SRC)])}
    single = subprocess.run([sys.executable, str(WORKER), str(tmp_path / "one.pt"), str(shards), "2"], env=env,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    launch = [torchrun, "--standalone", "--nproc_per_node", "2", str(WORKER), str(tmp_path / "two.pt"), str(shards),
              "1"]
    double = subprocess.run(launch, env=env, capture_output=True, text=True, timeout=300)
    assert double.returncode == 0, double.stderr[-3000:]
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    start = make_tiny_qwen3(vocab_size=128).state_dict()
    assert set(one) == set(two) == set(start)
    for name in one:
        torch.testing.assert_close(one[name], two[name], atol=2e-6, rtol=1e-5, msg=name)
    assert (one["model.embed_tokens.weight"] - start["model.embed_tokens.weight"]).abs().max() > 1e-3
