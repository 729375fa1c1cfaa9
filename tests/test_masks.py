# hildanext.train.masks against hand-written matrices: the 12x12 BDLM mask of a two-document row (row- and
# document-aligned blocks), the MDLM and causal document masks, the AR (block size 1) and MDLM (block size L)
# limits, batched rows equal stacked single rows, a -1 padding tail stays isolated, and bad arguments raise.
import pytest
import torch
from hildanext.train.masks import bdlm_attention_mask, block_index, causal_doc_mask, mdlm_attention_mask
TWO_DOCS = torch.tensor([0, 0, 0, 1, 1, 1])
BDLM_ROW_ALIGNED = [
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 1, 1, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
]
BDLM_DOC_ALIGNED = [
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1],
]
def as_bool(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.bool)

def test_block_index_row_and_document_alignment():
    assert block_index(TWO_DOCS, 2).tolist() == [0, 0, 1, 1, 2, 2]
    assert block_index(TWO_DOCS, 2, align="document").tolist() == [0, 0, 1, 2, 2, 3]
    assert block_index(torch.tensor([4, 4, 4, 4, 4, 7, 7]), 2, align="document").tolist() == [0, 0, 1, 1, 2, 3, 3]
    assert block_index(TWO_DOCS, 2).dtype == torch.long

def test_bdlm_row_aligned_two_documents():
    assert torch.equal(bdlm_attention_mask(TWO_DOCS, 2), as_bool(BDLM_ROW_ALIGNED))

def test_bdlm_document_aligned_two_documents():
    assert torch.equal(bdlm_attention_mask(TWO_DOCS, 2, align="document"), as_bool(BDLM_DOC_ALIGNED))

def test_mdlm_and_causal_document_masks():
    mdlm = [[1, 1, 1, 0, 0, 0]] * 3 + [[0, 0, 0, 1, 1, 1]] * 3
    causal = [[1, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0],
              [0, 0, 0, 1, 0, 0], [0, 0, 0, 1, 1, 0], [0, 0, 0, 1, 1, 1]]
    assert torch.equal(mdlm_attention_mask(TWO_DOCS), as_bool(mdlm))
    assert torch.equal(causal_doc_mask(TWO_DOCS), as_bool(causal))

@pytest.mark.parametrize("align", ["row", "document"])
def test_block_size_one_is_autoregressive(align):
    mask = bdlm_attention_mask(torch.zeros(4, dtype=torch.long), 1, align)
    identity = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    strictly_lower = [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0]]
    lower = [[1, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    assert torch.equal(mask[:4, :4], as_bool(identity)) and torch.equal(mask[:4, 4:], as_bool(strictly_lower))
    assert torch.equal(mask[4:, 4:], as_bool(lower)) and not mask[4:, :4].any()

@pytest.mark.parametrize("align", ["row", "document"])
def test_block_size_length_is_mdlm(align):
    mask = bdlm_attention_mask(torch.zeros(4, dtype=torch.long), 4, align)
    assert mask[:4, :4].all() and not mask[:4, 4:].any() and mask[4:, 4:].all() and not mask[4:, :4].any()

@pytest.mark.parametrize("align", ["row", "document"])
def test_batched_rows_equal_stacked_rows(align):
    rows = torch.tensor([[0, 0, 0, 1, 1, 1], [2, 2, 3, 3, 3, -1]])
    assert torch.equal(block_index(rows, 2, align), torch.stack([block_index(r, 2, align) for r in rows]))
    one_by_one = torch.stack([bdlm_attention_mask(r, 2, align) for r in rows])
    assert torch.equal(bdlm_attention_mask(rows, 2, align), one_by_one)
    assert torch.equal(mdlm_attention_mask(rows), torch.stack([mdlm_attention_mask(r) for r in rows]))
    assert torch.equal(causal_doc_mask(rows), torch.stack([causal_doc_mask(r) for r in rows]))

@pytest.mark.parametrize("align", ["row", "document"])
def test_padding_tail_is_isolated(align):
    doc_ids = torch.tensor([0, 0, 0, 0, 0, -1, -1, -1])
    real, pad = torch.tensor([0, 1, 2, 3, 4]), torch.tensor([5, 6, 7])
    for mask in (mdlm_attention_mask(doc_ids), causal_doc_mask(doc_ids)):
        assert not mask[real][:, pad].any() and not mask[pad][:, real].any()
    bdlm = bdlm_attention_mask(doc_ids, 2, align)
    real2, pad2 = torch.cat([real, real + 8]), torch.cat([pad, pad + 8])
    assert not bdlm[real2][:, pad2].any() and not bdlm[pad2][:, real2].any()
    assert bdlm[5, 5] and bdlm[13, 13]

def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="block_size"):
        block_index(TWO_DOCS, 0)
    with pytest.raises(ValueError, match="align"):
        bdlm_attention_mask(TWO_DOCS, 2, align="diagonal")
