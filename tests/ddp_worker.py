# Worker for tests/test_ddp.py: two optimizer steps of the shared training loop (train.optimizer_step,
# ShardLoader.next_step, the DDP-wrapped SupervisedLM from train.setup.distributed) on packed shards; rank 0 saves
# the resulting weights. Run alone with ACCUM micro-batches, or under `torchrun --nproc_per_node 2`.
# Usage: python tests/ddp_worker.py OUT SHARDS ACCUM
import sys
from pathlib import Path
import torch
from conftest import make_tiny_qwen3
from hildanext.config import ObjectiveParams
from hildanext.data.loader import PackedShards, ShardLoader
from hildanext.train.objective import ObjectiveSetup, diffusion_loss
from hildanext.train.loop import LoopSpec, optimizer_step
from hildanext.train.setup import distributed
def main(out: Path, shards: Path, accum: int) -> None:
    model = make_tiny_qwen3(vocab_size=128).train()
    dist, net = distributed(model)
    setup = ObjectiveSetup(ObjectiveParams(embed_noise_std=0.0), 120, torch.arange(100), 4)
    def loss_at(_, batch, step, micro):
        gen = torch.Generator().manual_seed(step * 131 + micro)
        return diffusion_loss(net, (batch["input_ids"], batch["doc_ids"]), setup, gen)
    spec = LoopSpec(2, lambda s: ("p", 4), lambda s: 0.01, loss_at, lambda m, s: {}, accum, 1e9,
                    rank=dist.process_index, world=dist.num_processes)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    loader = ShardLoader(PackedShards(shards, "train"), 2, seed=3)
    for step in range(2):
        optimizer_step(model, optimizer, spec, step, loader.next_step(accum, dist.process_index, dist.num_processes))
    if dist.process_index == 0:
        torch.save(model.state_dict(), out)

if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))
