# The LLaDA2.1 training objective as small pure functions shared by WSD, SFT and distillation: per-block (or per-
# sequence) t ~ U[eps, 1], M2T weighted 1/t, T2T corruption (random ids or the model's own drafts), KEEP, CAP at a
# temperature, embedding noise, semi-AR decoder states, logit KD from the AR teacher, a backward per extra pass; the
# BDLM/MDLM forward runs the LM head only at supervised positions (one back under the token shift). Entry points:
# ObjectiveSetup, sample_t, mask_tokens, noise_tokens, forward_selected, cap_entropy, semi_ar_t, teacher_logprobs,
# kd_loss, SupervisedLM (DDP-wrappable), diffusion_loss (CPT), sft_loss (SFT, distill) -> LossOutput.
from dataclasses import dataclass, replace
from typing import Callable
import torch
import torch.nn.functional as F
from hildanext.config import ObjectiveParams, SftParams
from hildanext.train.masks import (bdlm_attention_mask, block_index, causal_doc_mask, has_predecessor,
                                   mdlm_attention_mask, shift_source)
from hildanext.model import attention_mask_4d
@dataclass
class LossOutput:
    loss: torch.Tensor
    loss_m2t: float
    loss_t2t: float
    acc_m2t: float
    masked: int
    tokens: int
    loss_mtf: float | None = None
    loss_cap: float | None = None
    loss_kd: float | None = None

@dataclass(frozen=True)
class ObjectiveSetup:
    """Objective params, mask id, T2T pool, block size (None = MDLM), alignment, CAP, predecessor-only, teacher."""
    objective: ObjectiveParams
    mask_id: int
    regular_ids: torch.Tensor
    block_size: int | None
    align: str = "row"
    cap_weight: float = 0.0
    predecessor_only: bool = False
    cap_temperature: float = 1.0
    teacher: object = None
    backward: Callable | None = None
    def at(self, block_size: int | None) -> "ObjectiveSetup":
        return replace(self, block_size=block_size)
    def with_cap(self, weight: float, temperature: float = 1.0) -> "ObjectiveSetup":
        return replace(self, cap_weight=weight, cap_temperature=temperature)
    def m2t_only(self) -> "ObjectiveSetup":
        """No T2T, no KEEP, no embedding noise: the clean M2T objective (checkpoint ranking, the bench's ELBO)."""
        return replace(self, objective=replace(self.objective, t2t_rate=0.0, keep_rate=0.0, embed_noise_std=0.0))
    @property
    def needs_predecessor(self) -> bool:
        return self.objective.shift or self.predecessor_only

def regular_token_ids(tokenizer) -> torch.Tensor:
    special = set(tokenizer.all_special_ids) | {i for i in tokenizer.added_tokens_decoder}
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special], dtype=torch.long)

def sample_t(doc_ids: torch.Tensor, block_size: int, p: ObjectiveParams, align: str,
             gen: torch.Generator) -> torch.Tensor:
    rows, length = doc_ids.shape
    if p.t_per == "sequence":
        return (p.t_eps + (1 - p.t_eps) * torch.rand(rows, 1, generator=gen)).expand(rows, length)
    blocks = block_index(doc_ids, block_size, align)
    t_block = p.t_eps + (1 - p.t_eps) * torch.rand(rows, int(blocks.max()) + 1, generator=gen)
    return torch.gather(t_block, 1, blocks)

def mask_tokens(x0: torch.Tensor, t: torch.Tensor, maskable: torch.Tensor, mask_id: int, gen: torch.Generator):
    masked = (torch.rand(x0.shape, generator=gen) < t) & maskable
    return torch.where(masked, mask_id, x0), masked

def corrupt_tokens(xt: torch.Tensor, visible: torch.Tensor, rate: float, regular_ids: torch.Tensor,
                   gen: torch.Generator):
    chosen = (torch.rand(xt.shape, generator=gen) < rate) & visible
    draws = regular_ids[torch.randint(len(regular_ids) - 1, xt.shape, generator=gen)]
    draws = torch.where(draws == xt, regular_ids[-1], draws)
    return torch.where(chosen, draws, xt), chosen

def loss_positions(doc_ids: torch.Tensor, setup: ObjectiveSetup) -> torch.Tensor:
    """Real tokens; under the shift or predecessor_only only those whose predecessor is in the same document."""
    return has_predecessor(doc_ids) if setup.needs_predecessor else doc_ids >= 0

def model_inputs(x0: torch.Tensor, xt: torch.Tensor, doc_ids: torch.Tensor, block_size: int | None, align: str):
    length = x0.shape[1]
    positions = torch.arange(length).expand_as(x0)
    if block_size is None:
        return xt, positions, mdlm_attention_mask(doc_ids)
    return torch.cat([xt, x0], 1), torch.cat([positions, positions], 1), bdlm_attention_mask(doc_ids, block_size, align)

class SupervisedLM(torch.nn.Module):
    """The diffusion forward as one module, so DDP can wrap it; exact keeps the model's dtype (float64 references)."""
    def __init__(self, lm, exact: bool = False):
        super().__init__()
        self.lm, self.exact = lm, exact
    def forward(self, input_ids, position_ids, allowed, select, noise=None, source=None):
        return supervised_logits(self.lm, (input_ids, position_ids, allowed), select, noise, source, self.exact)

def as_supervised(model, exact: bool = False):
    if isinstance(model, (SupervisedLM, torch.nn.parallel.DistributedDataParallel)):
        return model
    return SupervisedLM(model.get_base_model() if hasattr(model, "peft_config") else model, exact)

def supervised_logits(model, inputs: tuple, select: torch.Tensor, noise: torch.Tensor | None = None,
                      source: torch.Tensor | None = None, exact: bool = False) -> torch.Tensor:
    """Logits at select for inputs (ids, positions, allowed) from the hidden state at source; float32 unless exact."""
    input_ids, position_ids, allowed = inputs
    embeds = model.get_input_embeddings()(input_ids)
    if noise is not None:
        embeds = embeds + F.pad(noise, (0, 0, 0, embeds.shape[1] - noise.shape[1])).to(embeds.dtype)
    mask = attention_mask_4d(allowed.to(input_ids.device), model.config._attn_implementation, embeds.dtype)
    hidden = model.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids,
                              use_cache=False).last_hidden_state
    if source is None:
        picked = hidden[:, : select.shape[1]][select]
    else:
        picked = hidden[torch.nonzero(select, as_tuple=True)[0], source[select]]
    logits = model.get_output_embeddings()(picked)
    return logits.to(torch.promote_types(logits.dtype, torch.float32)) if exact else logits.float()

def embedding_noise(model, masked: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    weight = model.get_input_embeddings().weight
    scale = std * float(weight.detach().float().pow(2).mean().sqrt())
    noise = torch.randn(*masked.shape, weight.shape[1], generator=gen) * scale
    return (noise * masked[..., None]).to(weight.device)

@dataclass
class Noised:
    xt: torch.Tensor
    masked: torch.Tensor
    substituted: torch.Tensor
    kept: torch.Tensor
    @property
    def select(self) -> torch.Tensor:
        return self.masked | self.substituted | self.kept

def noise_tokens(x0, xt, masked, maskable, setup: ObjectiveSetup, gen) -> Noised:
    """T2T substitutions and KEEP picks among the visible maskable positions of an M2T-masked x_t."""
    p = setup.objective
    xt, substituted = corrupt_tokens(xt, maskable & ~masked, p.t2t_rate, setup.regular_ids, gen)
    kept = (torch.rand(x0.shape, generator=gen) < p.keep_rate) & maskable & ~masked & ~substituted
    return Noised(xt, masked, substituted, kept)

def forward_selected(net, rows, xt, select, setup: ObjectiveSetup, extra=None) -> torch.Tensor:
    """Logits at the select positions of x_t; rows = (x0, doc_ids)."""
    (x0, doc_ids), model = rows, getattr(net, "module", net).lm
    input_ids, positions, allowed = model_inputs(x0, xt, doc_ids, setup.block_size, setup.align)
    device = model.get_input_embeddings().weight.device
    source = shift_source(doc_ids, setup.block_size, setup.align).to(device) if setup.objective.shift else None
    return net(input_ids.to(device), positions.to(device), allowed, select.to(device), extra, source)

def stream_losses(logits, x0, n: Noised, weights, m2t_norm) -> tuple[torch.Tensor, ...]:
    """(M2T, T2T, KEEP, M2T accuracy) over the selected positions; M2T is weighted and divided by m2t_norm."""
    select = n.select
    targets, device = x0[select].to(logits.device), logits.device
    ce = F.cross_entropy(logits, targets, reduction="none")
    on_masked, on_sub, on_kept = (mask[select].to(device) for mask in (n.masked, n.substituted, n.kept))
    loss_m2t = (ce * weights[select].to(device) * on_masked).sum() / max(int(m2t_norm), 1)
    loss_t2t = (ce * on_sub).sum() / on_sub.sum().clamp(min=1)
    loss_keep = (ce * on_kept).sum() / on_kept.sum().clamp(min=1)
    acc = (logits.argmax(-1) == targets)[on_masked].float().mean() if on_masked.any() else torch.tensor(0.0)
    return loss_m2t, loss_t2t, loss_keep, acc

def cap_entropy(logits: torch.Tensor, targets: torch.Tensor, on_masked: torch.Tensor,
                temperature: float = 1.0) -> torch.Tensor:
    """CAP: mean entropy of softmax(logits / T) over masked positions whose argmax is the target; 0 if none."""
    correct = (logits.argmax(-1) == targets) & on_masked
    log_probs = F.log_softmax(logits[correct] / temperature, dim=-1)
    return -(log_probs.exp() * log_probs).sum() / correct.sum().clamp(min=1)

def mixed_loss(logits, x0, n: Noised, setup: ObjectiveSetup, weights, m2t_norm) -> tuple[torch.Tensor, list]:
    """M2T + T2T + KEEP (+ cap_weight CAP) and the floats [M2T, T2T, M2T accuracy, CAP or None] of one stream."""
    p = setup.objective
    loss_m2t, loss_t2t, loss_keep, acc = stream_losses(logits, x0, n, weights, m2t_norm)
    loss = loss_m2t + p.t2t_weight * loss_t2t + p.keep_weight * loss_keep
    parts = [loss_m2t.item(), loss_t2t.item(), acc.item(), None]
    if setup.cap_weight > 0:
        select = n.select
        cap = cap_entropy(logits, x0[select].to(logits.device), n.masked[select].to(logits.device),
                          setup.cap_temperature)
        loss, parts[3] = loss + setup.cap_weight * cap, cap.item()
    return loss, parts

def diffusion_loss(model, rows, setup: ObjectiveSetup, gen, noise=False, fixed_t=None) -> LossOutput:
    """CPT (WSD) on rows (x0, doc_ids): per-block t ~ U[eps, 1] on every real token, M2T weighted 1/t + T2T + KEEP."""
    (x0, doc_ids), p, net = rows, setup.objective, as_supervised(model)
    maskable = loss_positions(doc_ids, setup)
    t = (sample_t(doc_ids, setup.block_size or x0.shape[1], p, setup.align, gen) if fixed_t is None
         else torch.full(x0.shape, float(fixed_t)))
    xt, masked = mask_tokens(x0, t, maskable, setup.mask_id, gen)
    n = noise_tokens(x0, xt, masked, maskable, setup, gen)
    lm = getattr(net, "module", net).lm
    extra = embedding_noise(lm, masked, p.embed_noise_std, gen) if noise and p.embed_noise_std > 0 else None
    logits = forward_selected(net, (x0, doc_ids), n.xt, n.select, setup, extra)
    loss, (loss_m2t, loss_t2t, acc, loss_cap) = mixed_loss(logits, x0, n, setup, 1 / t, maskable.sum())
    return LossOutput(loss, loss_m2t, loss_t2t, acc, int(masked.sum()), int(maskable.sum()), loss_cap=loss_cap)

def example_index(doc_ids: torch.Tensor) -> torch.Tensor:
    """A 0-based id per example (document of a row; a row's padding is one more), shape of doc_ids."""
    rows = torch.arange(doc_ids.shape[0])[:, None] * (int(doc_ids.max()) + 2)
    return torch.unique(doc_ids + 1 + rows, return_inverse=True)[1]

def example_t(doc_ids: torch.Tensor, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """One t ~ U[low, high] per example (document of a row), broadcast over its positions."""
    inverse = example_index(doc_ids)
    draws = low + (high - low) * torch.rand(int(inverse.max()) + 1, generator=gen)
    return draws[inverse]

def semi_ar_t(doc_ids, supervised, t, setup: ObjectiveSetup, rate: float, gen) -> torch.Tensor:
    """Decoder states at a rate share of examples: a supervised pivot block keeps t, earlier get 0, later 1."""
    example = example_index(doc_ids)
    count, blocks = int(example.max()) + 1, block_index(doc_ids, setup.block_size, setup.align)
    first = torch.full((count,), int(blocks.max()) + 1).scatter_reduce(0, example[supervised], blocks[supervised],
                                                                       "amin")
    last = torch.full((count,), -1).scatter_reduce(0, example[supervised], blocks[supervised], "amax")
    span, chosen = (last - first + 1).clamp(min=1), torch.rand(count, generator=gen) < rate
    pivot = (first + (torch.rand(count, generator=gen) * span).long())[example]
    staged = torch.where(blocks < pivot, 0.0, torch.where(blocks > pivot, 1.0, t))
    return torch.where(chosen[example], staged, t)

def teacher_logprobs(teacher, x0, doc_ids, picked: torch.Tensor, mask_id: int, temperature: float) -> torch.Tensor:
    """log softmax(teacher / T) for each picked (row, j): the AR teacher's clean causal read of j-1, no grad."""
    with torch.no_grad():
        device = teacher.get_input_embeddings().weight.device
        mask = attention_mask_4d(causal_doc_mask(doc_ids).to(device), teacher.config._attn_implementation,
                                 teacher.dtype)
        hidden = teacher.base_model(input_ids=x0.to(device), attention_mask=mask, use_cache=False).last_hidden_state
        rows, cols = picked
        logits = teacher.get_output_embeddings()(hidden[rows.to(device), (cols - 1).clamp(min=0).to(device)]).float()
        if mask_id < logits.shape[-1]:
            logits[:, mask_id] = float("-inf")
        return F.log_softmax(logits / temperature, dim=-1)

def kd_loss(logits: torch.Tensor, teacher_logp: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 x mean over positions of KL(teacher || student) at temperature T over the teacher's vocabulary."""
    student = F.log_softmax(logits.float() / temperature, dim=-1)[:, : teacher_logp.shape[-1]]
    p = teacher_logp.to(student.device).exp()
    kl = torch.where(p > 0, p * (teacher_logp.to(student.device) - student), 0.0).sum(-1)
    return temperature**2 * kl.sum() / max(len(kl), 1)

def mtf_draft(n: Noised, logits, setup: ObjectiveSetup) -> torch.Tensor:
    """MTF round 1's draft: x_t with each mask replaced by the argmax there (no grad, <|mask|> excluded)."""
    with torch.no_grad():
        draft_logits = logits.detach()[n.masked[n.select].to(logits.device)]
        draft_logits[:, setup.mask_id] = float("-inf")
        x_draft = n.xt.clone()
        x_draft[n.masked] = draft_logits.argmax(-1).to(x_draft.device)
    return x_draft

def mtf_loss(net, rows, n: Noised, x_draft: torch.Tensor, setup: ObjectiveSetup) -> torch.Tensor:
    """MTF round 2: the masks hold round 1's draft; learn to restore x0 at every drafted position."""
    redo = forward_selected(net, rows, x_draft, n.masked, setup)
    return F.cross_entropy(redo, rows[0][n.masked].to(redo.device))

def early_backward(term: torch.Tensor, setup: ObjectiveSetup) -> torch.Tensor:
    """Run setup.backward on term now (its graph is freed) and return it detached; term itself when unset."""
    if setup.backward is None or not term.requires_grad:
        return term
    setup.backward(term)
    return term.detach()

def draft_substitutions(net, rows, n: Noised, setup: ObjectiveSetup, rate: float, gen) -> Noised:
    """A rate share of the T2T picks take the model's argmax there (no grad, picks masked) where it is wrong."""
    pick = n.substituted & (torch.rand(n.xt.shape, generator=gen) < rate)
    if not pick.any():
        return n
    with torch.no_grad():
        logits = forward_selected(net, rows, torch.where(pick, setup.mask_id, n.xt), pick, setup).detach()
    logits[:, setup.mask_id] = float("-inf")
    draft, xt = logits.argmax(-1).cpu(), n.xt.clone()
    xt[pick] = torch.where(draft != rows[0][pick], draft, n.xt[pick])
    return replace(n, xt=xt)

def sft_masks(rows, setup: ObjectiveSetup, s: SftParams, gen, fixed_t) -> tuple:
    """(x0, doc_ids, supervised, t, masked) with semi-AR states and the complement rows appended when set."""
    x0, doc_ids, supervised = rows
    supervised = supervised & has_predecessor(doc_ids) if setup.needs_predecessor else supervised
    t = example_t(doc_ids, *s.mask_range, gen) if fixed_t is None else torch.full(x0.shape, float(fixed_t))
    if s.semi_ar_rate > 0 and setup.block_size is not None and fixed_t is None:
        t = semi_ar_t(doc_ids, supervised, t, setup, s.semi_ar_rate, gen)
    masked = (torch.rand(x0.shape, generator=gen) < t) & supervised
    if s.complementary:
        x0, doc_ids, t = torch.cat([x0, x0]), torch.cat([doc_ids, doc_ids]), torch.cat([t, 1 - t])
        masked = torch.cat([masked, supervised & ~masked])
        supervised = torch.cat([supervised, supervised])
    return x0, doc_ids, supervised, t, masked

def kd_term(logits, rows, n: Noised, setup: ObjectiveSetup, s: SftParams, originals: int) -> torch.Tensor:
    """KD at the masked positions with a same-document predecessor; the teacher reads the original clean rows."""
    x0, doc_ids = rows
    at = n.masked & has_predecessor(doc_ids)
    picked = torch.nonzero(at, as_tuple=True)
    teacher = teacher_logprobs(setup.teacher, x0[:originals], doc_ids[:originals], (picked[0] % originals, picked[1]),
                               setup.mask_id, s.kd_temperature)
    return kd_loss(logits[at[n.select].to(logits.device)], teacher, s.kd_temperature)

def sft_loss(model, rows, setup: ObjectiveSetup, s: SftParams, gen, fixed_t=None) -> LossOutput:
    """SFT/distillation on (x0, doc_ids, supervised): M2T + T2T + KEEP (+ CAP, KD, MTF); each pass backwarded early."""
    net, originals = as_supervised(model), rows[0].shape[0]
    x0, doc_ids, supervised, t, masked = sft_masks(rows, setup, s, gen, fixed_t)
    n = noise_tokens(x0, torch.where(masked, setup.mask_id, x0), masked, supervised, setup, gen)
    if s.t2t_draft_rate > 0 and fixed_t is None:
        n = draft_substitutions(net, (x0, doc_ids), n, setup, s.t2t_draft_rate, gen)
    logits = forward_selected(net, (x0, doc_ids), n.xt, n.select, setup)
    inv_t = s.loss_weight == "inv_t"
    weights = 1 / t.clamp(min=setup.objective.t_eps) if inv_t else torch.ones_like(t)
    loss, (loss_m2t, loss_t2t, acc, loss_cap) = mixed_loss(logits, x0, n, setup, weights,
                                                           supervised.sum() if inv_t else masked.sum())
    use_kd = s.kd_weight > 0 and setup.teacher is not None
    kd = kd_term(logits, (x0, doc_ids), n, setup, s, originals) if use_kd else None
    x_draft = mtf_draft(n, logits, setup) if s.mtf and masked.any() else None
    loss = early_backward(loss + s.kd_weight * kd if kd is not None else loss, setup)
    del logits
    loss_mtf = mtf_loss(net, (x0, doc_ids), n, x_draft, setup) if x_draft is not None else None
    if loss_mtf is not None:
        loss = loss + early_backward(s.mtf_weight * loss_mtf, setup)
    mtf_value = (loss_mtf.item() if loss_mtf is not None else 0.0) if s.mtf else None
    counts, kd_value = (int(masked.sum()), int(supervised.sum())), kd.item() if kd is not None else None
    return LossOutput(loss, loss_m2t, loss_t2t, acc, *counts, mtf_value, loss_cap, kd_value)
