# The merge stage (`hildanext merge`): the merge.top_k best checkpoints of the final WSD phase in models/wsd
# (by the clean M2T eval loss at wsd.decay_to: no T2T, no KEEP, no embedding noise) -> their mean in
# models/merged, evaluated the same way and reported beside the best single checkpoint in metrics/merge.json,
# with the number of candidates (one line when fewer than top_k). Entry point: run(params, tracker).
from hildanext.config import Params
from hildanext.data.loader import PackedShards
from hildanext.files import write_json_atomic
from hildanext.model import model_meta, save_model
from hildanext.pipeline import paths
from hildanext.train.checkpoints import Checkpoints
from hildanext.train.evaluate import evaluate
from hildanext.train.merge import final_phase_candidates, merged_checkpoints
from hildanext.train.objective import ObjectiveSetup, regular_token_ids
from hildanext.train.profiles import micro_steps, resolve_profile
from hildanext.train.wsd import diffusion_eval_loss, ranking_key, wsd_phases
def run(params: Params, tracker) -> dict:
    p, top_k, eval_shards = params.wsd, params.merge.top_k, PackedShards(paths.TOKENIZED, "eval", paths.INIT)
    ckpts = Checkpoints(paths.WSD, 1, 0, ranking_key(p.decay_to))
    final_phase = wsd_phases(p, eval_shards.seq_len)[-1].name
    candidates = final_phase_candidates(ckpts, final_phase)
    if len(candidates) < top_k:
        print(f"merge: only {len(candidates)} checkpoint(s) of the final phase {final_phase} for merge.top_k {top_k}; "
              f"averaging {len(candidates)}")
    chosen = candidates[:top_k]
    model, tokenizer = merged_checkpoints(chosen, paths.INIT, params.runtime)
    setup = ObjectiveSetup(params.objective, tokenizer.mask_token_id, regular_token_ids(tokenizer), p.decay_to,
                           p.block_align)
    loss_fn = diffusion_eval_loss(setup.m2t_only())
    merged = evaluate(model, eval_shards, loss_fn, p, micro_steps(p.batch_size, resolve_profile(params.runtime))[0])
    best = ckpts.state(chosen[0])["eval"][ckpts.best_key]
    names = [c.name for c in chosen]
    report = {"chosen": names, "candidates": len(candidates), "top_k": top_k, "merged_loss_m2t": merged["loss_m2t"],
              "merged_acc_m2t": merged["acc_m2t"], "best_single_loss_m2t": best}
    meta = model_meta(tokenizer, "merge", params, p.decay_to, ",".join(names), paths.commit()) | {"merge": report}
    save_model(model, tokenizer, paths.MERGED, meta)
    write_json_atomic(paths.metrics("merge"), report)
    return {k: v for k, v in report.items() if k != "chosen"} | {"k": len(chosen)}
