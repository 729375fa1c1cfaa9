# Block-diffusion loglikelihood of a continuation given its context, for lm-eval: a Monte Carlo ELBO on the
# decoder's absolute block grid (clean context, each continuation block noised given the clean earlier blocks via
# the training forward over concat(x_t, x_0), k ~ U{1..n} per block stratified across draws, weight n/k, token
# shift honoured), the greedy check (one token per pass, most confident first) and rolling windows. Entry points:
# ElboSpec, continuation_spans, stratified_counts, draw_masks, masked_loglik, elbo_loglik, greedy_matches.
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from hildanext.decode.decoder import block_causal
from hildanext.eval.bench import elbo_setup
from hildanext.model import masked_logits
from hildanext.train.objective import ObjectiveSetup, as_supervised, forward_selected
@dataclass(frozen=True)
class ElboSpec:
    """What the bound needs: mask id, block size, token shift, Monte Carlo draws, draws per forward, seed."""
    mask_id: int
    block_size: int
    shift: bool = False
    mc_num: int = 16
    batch_size: int = 8
    seed: int = 0
    def setup(self) -> ObjectiveSetup:
        """The bench's M2T-only ELBO objective (no T2T pool needed: nothing is substituted)."""
        return elbo_setup(self.mask_id, torch.empty(0, dtype=torch.long), self.block_size, self.shift)

def continuation_spans(context_len: int, total_len: int, block_size: int) -> list[tuple[int, int]]:
    """[start, end) of the continuation's part of each grid block (blocks start at multiples of block_size)."""
    spans, start = [], context_len
    while start < total_len:
        end = min((start // block_size + 1) * block_size, total_len)
        spans.append((start, end))
        start = end
    return spans

def stratified_counts(n: int, draws: int, gen: torch.Generator) -> torch.Tensor:
    """Masked counts in 1..n for each draw, evenly spread from a random start (LLaDA's _forward_process)."""
    first = int(torch.randint(1, n + 1, (), generator=gen))
    counts = torch.round(torch.linspace(float(first), first + (draws - 1) * (n / draws), draws)).long()
    return (counts - 1) % n + 1

def draw_masks(spans, total_len: int, draws: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """masked [draws, L] and the weight n/k of every masked position, k stratified per block."""
    masked, weight = torch.zeros(draws, total_len, dtype=torch.bool), torch.zeros(draws, total_len)
    for start, end in spans:
        n = end - start
        for row, k in enumerate(stratified_counts(n, draws, gen).tolist()):
            masked[row, start + torch.randperm(n, generator=gen)[:k]] = True
            weight[row, start:end] = n / k
    return masked, weight

def masked_loglik(model, ids: list[int], masked: torch.Tensor, weight: torch.Tensor, spec: ElboSpec) -> torch.Tensor:
    """-sum of weight * cross-entropy over the masked positions of each draw (one forward per spec.batch_size)."""
    x0, net = torch.tensor(ids, dtype=torch.long), as_supervised(model, exact=True)
    out = []
    for i in range(0, masked.shape[0], spec.batch_size):
        select, w = masked[i : i + spec.batch_size], weight[i : i + spec.batch_size]
        rows = x0.expand(select.shape[0], -1)
        doc_ids = torch.zeros_like(rows)
        logits = forward_selected(net, (rows, doc_ids), torch.where(select, spec.mask_id, rows),
                                  select, spec.setup())
        ce = F.cross_entropy(logits, rows[select].to(logits.device), reduction="none")
        owner = torch.nonzero(select, as_tuple=True)[0].to(logits.device)
        per_draw = torch.zeros(select.shape[0], dtype=ce.dtype, device=ce.device)
        out.append(-per_draw.index_add(0, owner, ce * w[select].to(ce)))
    return torch.cat(out)

@torch.no_grad()
def elbo_loglik(model, context: list[int], continuation: list[int], spec: ElboSpec) -> float:
    """The ELBO of log p(continuation | context): mean over spec.mc_num draws from spec.seed."""
    if not context:
        raise ValueError("elbo_loglik: the context is empty; lm-eval passes its prefix token as context")
    ids, gen = [*context, *continuation], torch.Generator().manual_seed(spec.seed)
    masked, weight = draw_masks(continuation_spans(len(context), len(ids), spec.block_size), len(ids),
                                spec.mc_num, gen)
    return float(masked_loglik(model, ids, masked, weight, spec).mean())

def block_logits(model, canvas: list[int], start: int, end: int, spec: ElboSpec) -> torch.Tensor:
    """Logits for canvas[start:end] under block-causal attention on the grid (read at p - 1 under the shift)."""
    ids = torch.tensor([canvas[:end]], device=model.device)
    logits = masked_logits(model, ids, block_causal(0, end, spec.block_size))[0]
    return logits[start - 1 : end - 1] if spec.shift else logits[start:end]

@torch.no_grad()
def greedy_matches(model, context: list[int], continuation: list[int], spec: ElboSpec) -> bool:
    """Whether decoding len(continuation) tokens, one per pass, most confident first, no edits, gives it exactly."""
    canvas = [*context, *[spec.mask_id] * len(continuation)]
    for start, end in continuation_spans(len(context), len(canvas), spec.block_size):
        for _ in range(end - start):
            logits = block_logits(model, canvas, start, end, spec).float()
            open_ = torch.tensor([canvas[p] == spec.mask_id for p in range(start, end)], device=logits.device)
            conf, tokens = logits.softmax(-1).max(-1)
            pick = int(conf.masked_fill(~open_, -1.0).argmax())
            canvas[start + pick] = int(tokens[pick])
            if canvas[start + pick] != continuation[start + pick - len(context)]:
                return False
    return True
