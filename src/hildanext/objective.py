# The LLaDA2.1 training objective as small pure functions shared by WSD and SFT: per-block (or per-sequence)
# t ~ U[eps, 1], M2T masking with loss weighted 1/t, T2T corruption of visible tokens by random regular ids,
# an optional KEEP term, embedding noise at masked positions, and the vectorised BDLM/MDLM forward where the
# LM head runs only at supervised positions. Entry points: regular_token_ids, sample_t, mask_tokens,
# corrupt_tokens, model_inputs, supervised_logits, SupervisedLM (DDP-wrappable), diffusion_loss -> LossOutput.
from dataclasses import dataclass
import torch
import torch.nn.functional as F
from hildanext.config import ObjectiveParams
from hildanext.masks import bdlm_attention_mask, block_index, mdlm_attention_mask
from hildanext.modeling import attention_mask_4d
@dataclass
class LossOutput:
    loss: torch.Tensor
    loss_m2t: float
    loss_t2t: float
    acc_m2t: float
    masked: int
    tokens: int

def regular_token_ids(tokenizer) -> torch.Tensor:
    special = set(tokenizer.all_special_ids) | {i for i in tokenizer.added_tokens_decoder}
    return torch.tensor([i for i in range(len(tokenizer)) if i not in special], dtype=torch.long)

def sample_t(doc_ids: torch.Tensor, block_size: int, p: ObjectiveParams, align: str, gen: torch.Generator) -> torch.Tensor:
    rows, length = doc_ids.shape
    if p.t_per == "sequence":
        return (p.t_eps + (1 - p.t_eps) * torch.rand(rows, 1, generator=gen)).expand(rows, length)
    blocks = block_index(doc_ids, block_size, align)
    t_block = p.t_eps + (1 - p.t_eps) * torch.rand(rows, int(blocks.max()) + 1, generator=gen)
    return torch.gather(t_block, 1, blocks)

def mask_tokens(x0: torch.Tensor, t: torch.Tensor, maskable: torch.Tensor, mask_id: int, gen: torch.Generator):
    masked = (torch.rand(x0.shape, generator=gen) < t) & maskable
    return torch.where(masked, mask_id, x0), masked

def corrupt_tokens(xt: torch.Tensor, visible: torch.Tensor, rate: float, regular_ids: torch.Tensor, gen: torch.Generator):
    chosen = (torch.rand(xt.shape, generator=gen) < rate) & visible
    draws = regular_ids[torch.randint(len(regular_ids) - 1, xt.shape, generator=gen)]
    draws = torch.where(draws == xt, regular_ids[-1], draws)
    return torch.where(chosen, draws, xt), chosen

def model_inputs(x0: torch.Tensor, xt: torch.Tensor, doc_ids: torch.Tensor, block_size: int | None, align: str):
    length = x0.shape[1]
    positions = torch.arange(length).expand_as(x0)
    if block_size is None:
        return xt, positions, mdlm_attention_mask(doc_ids)
    return torch.cat([xt, x0], 1), torch.cat([positions, positions], 1), bdlm_attention_mask(doc_ids, block_size, align)

class SupervisedLM(torch.nn.Module):
    """The diffusion forward as one module, so DDP can wrap it and sync its gradients."""
    def __init__(self, lm):
        super().__init__()
        self.lm = lm
    def forward(self, input_ids, position_ids, allowed, select, noise=None):
        return supervised_logits(self.lm, input_ids, position_ids, allowed, select, noise)

def as_supervised(model):
    if isinstance(model, (SupervisedLM, torch.nn.parallel.DistributedDataParallel)):
        return model
    return SupervisedLM(model.get_base_model() if hasattr(model, "peft_config") else model)

def supervised_logits(model, input_ids, position_ids, allowed, select: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
    embeds = model.get_input_embeddings()(input_ids)
    if noise is not None:
        embeds = embeds + F.pad(noise, (0, 0, 0, embeds.shape[1] - noise.shape[1])).to(embeds.dtype)
    mask = attention_mask_4d(allowed.to(input_ids.device), model.config._attn_implementation, embeds.dtype)
    hidden = model.base_model(inputs_embeds=embeds, attention_mask=mask, position_ids=position_ids, use_cache=False).last_hidden_state
    return model.get_output_embeddings()(hidden[:, : select.shape[1]][select]).float()

def embedding_noise(model, masked: torch.Tensor, std: float, gen: torch.Generator) -> torch.Tensor:
    weight = model.get_input_embeddings().weight
    scale = std * float(weight.detach().float().pow(2).mean().sqrt())
    noise = torch.randn(*masked.shape, weight.shape[1], generator=gen) * scale
    return (noise * masked[..., None]).to(weight.device)

def diffusion_loss(model, x0, doc_ids, block_size: int | None, p: ObjectiveParams, mask_id: int, regular_ids, gen, align="row", noise=False, fixed_t=None) -> LossOutput:
    net = as_supervised(model)
    model = getattr(net, "module", net).lm
    maskable = doc_ids >= 0
    t = sample_t(doc_ids, block_size or x0.shape[1], p, align, gen) if fixed_t is None else torch.full(x0.shape, float(fixed_t))
    xt, masked = mask_tokens(x0, t, maskable, mask_id, gen)
    xt, substituted = corrupt_tokens(xt, maskable & ~masked, p.t2t_rate, regular_ids, gen)
    kept = (torch.rand(x0.shape, generator=gen) < p.keep_rate) & maskable & ~masked & ~substituted
    select = masked | substituted | kept
    input_ids, positions, allowed = model_inputs(x0, xt, doc_ids, block_size, align)
    extra = embedding_noise(model, masked, p.embed_noise_std, gen) if noise and p.embed_noise_std > 0 else None
    device = model.get_input_embeddings().weight.device
    logits = net(input_ids.to(device), positions.to(device), allowed, select.to(device), extra)
    targets, weights = x0[select].to(device), (1 / t)[select].to(device)
    ce = F.cross_entropy(logits, targets, reduction="none")
    on_masked, on_sub, on_kept = masked[select].to(device), substituted[select].to(device), kept[select].to(device)
    loss_m2t = (ce * weights * on_masked).sum() / maskable.sum().clamp(min=1)
    loss_t2t = (ce * on_sub).sum() / on_sub.sum().clamp(min=1)
    loss_keep = (ce * on_kept).sum() / on_kept.sum().clamp(min=1)
    acc = (logits.argmax(-1) == targets)[on_masked].float().mean() if on_masked.any() else torch.tensor(0.0)
    loss = loss_m2t + p.t2t_weight * loss_t2t + p.keep_weight * loss_keep
    return LossOutput(loss, loss_m2t.item(), loss_t2t.item(), acc.item(), int(masked.sum()), int(maskable.sum()))
