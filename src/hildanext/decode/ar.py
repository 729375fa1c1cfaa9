# The autoregressive baseline: Hugging Face generate (greedy at temperature 0) with the same DecodeSettings,
# SpecialIds and DecodeResult as the block-diffusion decoder (one record per generated token, TPF 1), and its
# engine (registered as "ar"; decode modes and taus do not apply). Entry points: ar_generate_ids, AREngine.
import time
import torch
from transformers import GenerationConfig
from hildanext.decode.decoder import DecodeResult, PassRecord, cut_at_stop, decode_stats
from hildanext.decode.engines import Engine, Prepared
from hildanext.decode.settings import DecodeSettings, SpecialIds
def generation_config(s: DecodeSettings, special: SpecialIds) -> GenerationConfig:
    sampling = {"do_sample": False}
    if s.temperature > 0:
        sampling = {"do_sample": True, "temperature": s.temperature, "top_k": s.top_k or 0, "top_p": s.top_p or 1.0}
    return GenerationConfig(max_new_tokens=s.max_new_tokens, eos_token_id=list(special.stops),
                            pad_token_id=special.eos_id, suppress_tokens=list(special.banned_ids) or None, **sampling)

def ar_generate_ids(model, prompt_ids, settings: DecodeSettings, special: SpecialIds) -> DecodeResult:
    """Causal decoding of settings.max_new_tokens after prompt_ids; ids end after the first stop token."""
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).flatten()[None].to(model.device)
    torch.manual_seed(settings.seed)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(prompt, attention_mask=torch.ones_like(prompt),
                             generation_config=generation_config(settings, special))
    seconds = time.perf_counter() - started
    new = out[0, prompt.shape[1]:].tolist()
    ids = cut_at_stop(new, set(special.stops))
    trace = [PassRecord(0, i, 0, [(i, token)], []) for i, token in enumerate(ids)]
    return DecodeResult(ids, trace, decode_stats(len(new), len(ids), seconds))

class AREngine(Engine):
    """The autoregressive baseline (Hugging Face generate); its folder needs no mask token."""
    name, needs_mask = "ar", False
    def decode(self, prepared: Prepared, observer) -> tuple[DecodeResult, list[str]]:
        result = ar_generate_ids(self.model, prepared.prompt_ids, prepared.settings, self.special)
        if observer is not None:
            observer({"type": "block", "block": 0, "ids": result.ids})
        return result, []
