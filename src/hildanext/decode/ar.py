# The autoregressive baseline: Hugging Face generate (greedy at temperature 0) with the same DecodeSettings,
# SpecialIds and DecodeResult as the block-diffusion decoder (one record per generated token, TPF 1), and its
# engine (registered as "ar"; decode modes and taus do not apply), whose session batches greedy rows into one
# left-padded generate. Entry points: ar_generate_ids, ar_generate_rows, AREngine, ARSession.
import time
from dataclasses import replace
import torch
from transformers import GenerationConfig
from hildanext.decode.batch import Session
from hildanext.decode.decoder import DecodeResult, PassRecord, cut_at_stop, decode_stats
from hildanext.decode.engines import Completion, Engine, Prepared
from hildanext.decode.settings import DecodeSettings, SpecialIds
def generation_config(s: DecodeSettings, special: SpecialIds) -> GenerationConfig:
    sampling = {"do_sample": False}
    if s.temperature > 0:
        sampling = {"do_sample": True, "temperature": s.temperature, "top_k": s.top_k or 0, "top_p": s.top_p or 1.0}
    return GenerationConfig(max_new_tokens=s.max_new_tokens, eos_token_id=list(special.stops),
                            pad_token_id=special.eos_id, suppress_tokens=list(special.banned_ids) or None, **sampling)

def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """[rows, longest] ids with each prompt at the right end, and the attention mask (0 on the padding)."""
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = torch.as_tensor(prompt, dtype=torch.long)
        mask[row, width - len(prompt) :] = 1
    return ids, mask

def result_of(new: list[int], settings: DecodeSettings, special: SpecialIds, seconds: float) -> DecodeResult:
    ids = cut_at_stop(new[: settings.max_new_tokens], set(special.stops))
    trace = [PassRecord(0, i, 0, [(i, token)], []) for i, token in enumerate(ids)]
    return DecodeResult(ids, trace, decode_stats(len(ids), len(ids), seconds))

def ar_generate_rows(model, prompts: list[list[int]], settings: list[DecodeSettings],
                     special: SpecialIds) -> list[DecodeResult]:
    """One generate over left-padded prompts (row 0's settings, the longest max_new_tokens), each row cut after."""
    longest = replace(settings[0], max_new_tokens=max(s.max_new_tokens for s in settings))
    ids, mask = (t.to(model.device) for t in left_padded([list(p) for p in prompts], special.eos_id))
    torch.manual_seed(longest.seed)
    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(ids, attention_mask=mask, generation_config=generation_config(longest, special))
    seconds = time.perf_counter() - started
    rows = out[:, ids.shape[1] :].tolist()
    return [result_of(new, s, special, seconds) for new, s in zip(rows, settings, strict=True)]

def ar_generate_ids(model, prompt_ids, settings: DecodeSettings, special: SpecialIds) -> DecodeResult:
    """Causal decoding of settings.max_new_tokens after prompt_ids; ids end after the first stop token."""
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).flatten().tolist()
    return ar_generate_rows(model, [prompt], [settings], special)[0]

class AREngine(Engine):
    """The autoregressive baseline (Hugging Face generate); its folder needs no mask token."""
    name, needs_mask = "ar", False
    def decode(self, prepared: Prepared, observer) -> tuple[DecodeResult, list[str]]:
        result = ar_generate_ids(self.model, prepared.prompt_ids, prepared.settings, self.special)
        if observer is not None:
            observer({"type": "block", "block": 0, "ids": result.ids})
        return result, []
    def session(self, max_rows: int) -> "ARSession":
        return ARSession(self, max_rows)

class ARSession(Session):
    """Each step: up to max_rows greedy rows in one generate; a sampled row runs alone (batch 1's draws)."""
    def take(self) -> list[tuple]:
        if self.waiting[0][1].settings.temperature > 0:
            return [self.waiting.popleft()]
        rows = [row for row in self.waiting if row[1].settings.temperature == 0][: self.max_rows]
        for row in rows:
            self.waiting.remove(row)
        return rows
    def step(self) -> list[tuple[int, Completion | BaseException]]:
        if not self.waiting:
            return []
        rows = self.take()
        try:
            results = ar_generate_rows(self.engine.model, [p.prompt_ids for _, p, _ in rows],
                                       [p.settings for _, p, _ in rows], self.engine.special)
        except Exception as e:
            return [(key, e) for key, _, _ in rows]
        return [(key, self.ended(p, observer, r)) for (key, p, observer), r in zip(rows, results, strict=True)]
    def ended(self, prepared: Prepared, observer, result: DecodeResult) -> Completion | BaseException:
        try:
            if observer is not None:
                observer({"type": "block", "block": 0, "ids": result.ids})
            return self.engine.completion(prepared, result)
        except Exception as e:
            return e
