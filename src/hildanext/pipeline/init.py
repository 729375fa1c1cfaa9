# The init stage (`hildanext init`): the AR base (models/demo-base or model.base) -> models/init with the
# <|mask|> token added (embedding rows padded to a multiple of 64 when needed) and provenance in hildanext.json.
# Entry point: run(params, tracker).
from hildanext.config import Params
from hildanext.files import hash_tree
from hildanext.model import add_mask_token, load_model, model_meta, save_model
from hildanext.pipeline import paths
def run(params: Params, tracker) -> dict:
    base = paths.base_folder(params)
    model, tokenizer = load_model(base, params.runtime)
    rows_before = model.get_input_embeddings().weight.shape[0]
    mask_id = add_mask_token(model, tokenizer, params.model.mask_token)
    rows = model.get_input_embeddings().weight.shape[0]
    save_model(model, tokenizer, paths.INIT, model_meta(tokenizer, "init", params, 1, hash_tree(base), paths.commit()))
    return {"mask_id": mask_id, "vocab_rows": rows, "resized": int(rows != rows_before)}
