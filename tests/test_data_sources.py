# Raw readers and the prepare stage on fixtures in the real formats: every bad-input case is skipped and
# counted by reason while all good documents survive; a truncated gzip keeps its complete lines; an
# unopenable file or an empty glob stops with a message naming it; mixture budgets, split and determinism.
from collections import Counter
import pytest
from data_fixtures import write_dolma, write_jsonl_zst, write_parquet, write_tinystories_txt, write_truncated_dolma
from hildanext.config import DataParams, SourceParams
from hildanext.data.prepare import mix_sources, prepared_docs, split_of
from hildanext.data.sources import DataError, Doc
MAX_LINE = 4096
def params(*sources, **kw) -> DataParams:
    return DataParams(sources=tuple(sources), max_line_bytes=MAX_LINE, eval_fraction=0.0, **kw)

def run(p: DataParams):
    skips = Counter()
    return [doc for _, doc in prepared_docs(p, skips)], dict(skips)

def test_dolma_bad_records_are_counted_and_good_ones_kept(tmp_path):
    good, skips = write_dolma(tmp_path / "v1_5r2_sample-0000.json.gz", MAX_LINE)
    docs, found = run(params(SourceParams(kind="dolma", paths=(str(tmp_path / "*.json.gz"),))))
    assert [d.text for d in docs] == good and found == skips
    assert [d.id for d in docs] == ["doc-0", "doc-1", "doc-6"] and {d.source for d in docs} == {"dolma"}

def test_truncated_gzip_keeps_complete_lines(tmp_path):
    expected = write_truncated_dolma(tmp_path / "cut.json.gz")
    docs, found = run(params(SourceParams(kind="dolma", paths=(str(tmp_path / "cut.json.gz"),))))
    assert 50 < len(expected) < 400 and [d.text for d in docs] == expected
    assert found.get("truncated_stream") == 1 and set(found) <= {"truncated_stream", "invalid_json"}

@pytest.mark.parametrize("writer, name, kind", [(write_tinystories_txt, "TinyStoriesV2-GPT4-valid.txt", "tinystories"),
                                                (write_parquet, "train-00000-of-00004.parquet", "tinystories"),
                                                (write_jsonl_zst, "local.jsonl.zst", "auto")])
def test_other_formats(tmp_path, writer, name, kind):
    good, skips = writer(tmp_path / name)
    docs, found = run(params(SourceParams(kind=kind, paths=(str(tmp_path / name),))))
    assert [d.text for d in docs] == good and found == skips

def test_unopenable_files_and_empty_globs_stop_with_their_name(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    (tmp_path / "fake.jsonl.gz").write_bytes(b"not gzip at all")
    (tmp_path / "notes.docx").write_text("x")
    cases = {"broken.parquet": "cannot open as parquet", "fake.jsonl.gz": "cannot read",
             "notes.docx": "unknown file type", "missing/*.txt": "matches no file"}
    for pattern, message in cases.items():
        with pytest.raises(DataError, match=message) as err:
            run(params(SourceParams(paths=(str(tmp_path / pattern),))))
        assert pattern.split("/")[0] in str(err.value)

def test_generic_sources_by_string_and_oversized_txt_line(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "A long enough first document."}\n'
                                      '{"text": "A long enough second document."}\n')
    (tmp_path / "b.txt").write_text("One plain text file as one document.\n" + "y" * MAX_LINE + "\n")
    p = DataParams(sources=(str(tmp_path / "a.jsonl"), f"txt:{tmp_path / 'b.txt'}"), max_line_bytes=MAX_LINE,
                   eval_fraction=0.0)
    docs, found = run(p)
    assert ([d.text for d in docs] == ["A long enough first document.", "A long enough second document."]
            and found == {"oversized_line": 1})

def stream(name: str):
    return (Doc(f"{name}{i}", "abcd" * 10, name) for i in range(100))

def test_mixture_by_weight_and_token_budget():
    p = DataParams(bytes_per_token=4.0)
    mixed = list(mix_sources([stream("a"), stream("b")], [3.0, 1.0], [0, 100], p))
    assert [d.source for d in mixed[:8]] == ["a", "b", "a", "a", "a", "b", "a", "a"]
    assert sum(d.source == "b" for d in mixed) == 10 and sum(d.source == "a" for d in mixed) == 100
    first = list(mix_sources([stream("a"), stream("b")], [1.0, 1.0], [0, 100], DataParams(mix_stop="first")))
    assert sum(d.source == "b" for d in first) == 10 and len(first) == 21

def test_split_is_deterministic_disjoint_and_near_fraction():
    p = DataParams(eval_fraction=0.2, split_seed=3)
    docs = [Doc(str(i), "t", "s") for i in range(5000)]
    splits = [split_of(d, p) for d in docs]
    assert splits == [split_of(d, p) for d in docs] and 900 < splits.count("eval") < 1100
    assert splits != [split_of(d, DataParams(eval_fraction=0.2, split_seed=4)) for d in docs]

def test_demo_source_is_default_and_deterministic():
    first, second = run(DataParams(demo_stories=50)), run(DataParams(demo_stories=50))
    assert first == second and len(first[0]) == 50 and first[0][0].source == "demo"

def test_prepare_stage_on_real_format_files_with_set(workdir):
    import json
    import pyarrow.parquet as pq
    from hildanext.pipeline import run_stage
    raw = workdir / "raw"
    raw.mkdir()
    dolma_good, dolma_skips = write_dolma(raw / "v1_5r2_sample-0000.json.gz", MAX_LINE)
    story_good, story_skips = write_tinystories_txt(raw / "TinyStoriesV2-GPT4-valid.txt")
    sources = 'prepare.sources=["dolma:raw/*.json.gz", "tinystories:raw/*.txt"]'
    run_stage("prepare", "params.yaml", [sources, f"prepare.max_line_bytes={MAX_LINE}", "prepare.eval_fraction=0.3"])
    manifest = json.loads((workdir / "data/processed/manifest.json").read_text())
    tables = [pq.read_table(workdir / f"data/processed/{split}.parquet") for split in ("train", "eval")]
    texts = [t for table in tables for t in table.column("text").to_pylist()]
    assert sorted(texts) == sorted(dolma_good + story_good)
    assert manifest["skipped"] == dict(Counter(dolma_skips) + Counter(story_skips))
    assert sum(c["docs"] for c in manifest["splits"].values()) == 6 and manifest["splits"]["eval"]["docs"] >= 1
