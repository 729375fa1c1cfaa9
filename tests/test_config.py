# Params loading: the repo's params.yaml validates, defaults match the dataclasses, --set overrides use
# dvc-style dotted keys, and unknown keys, wrong types or out-of-range values fail with one message naming
# the key and the file. Also the overlay merge used by tests and CI (overlays/ci.yaml) and the gtx1080 recipe
# overlay (safe train config, step-by-step decay with no warning, its token budget).
import dataclasses
import pytest
import yaml
from hildanext.config import (DEMO_VALUES, RECIPE_VALUES, ModelParams, Params, ParamsError, flatten, load_params,
                              merge_overlay)
def write(tmp_path, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path

def test_repo_params_validate_and_are_frozen(repo_root):
    params = load_params(repo_root / "params.yaml")
    assert params.model.base == "demo" and params.model.revision == ModelParams().revision
    with pytest.raises(dataclasses.FrozenInstanceError):
        params.model.base = "x"

def test_every_default_appears_in_repo_params(repo_root):
    assert set(flatten(yaml.safe_load((repo_root / "params.yaml").read_text()))) == set(flatten(Params()))

def demo_value_findings(defaults: dict, repo: dict, declared: dict) -> list[str]:
    differing = {key for key in defaults if defaults[key] != repo[key]}
    undeclared = sorted(differing - set(declared))
    found = [f"{k}: params.yaml has {repo[k]!r}, config.py {defaults[k]!r}" for k in undeclared]
    return found + [f"{k}: declared in DEMO_VALUES but equal to the default" for k in sorted(set(declared) - differing)]

def test_repo_params_equal_the_defaults_except_the_declared_demo_values(repo_root):
    declared = DEMO_VALUES | RECIPE_VALUES
    found = demo_value_findings(flatten(Params()), flatten(load_params(repo_root / "params.yaml")), declared)
    assert found == [], "declare each in config.DEMO_VALUES or align the default:\n" + "\n".join(found)
    assert all(reason.strip() and "\n" not in reason for reason in declared.values())

def test_demo_value_check_reports_undeclared_and_stale_keys():
    defaults, repo = {"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5, "c": 4}
    assert demo_value_findings(defaults, repo, {"a": "x", "c": "y"}) == [
        "b: params.yaml has 5, config.py 2", "a: declared in DEMO_VALUES but equal to the default"]
    assert demo_value_findings(defaults, repo, {"b": "x", "c": "y"}) == []

def test_set_overrides_dotted_keys_with_types(tmp_path):
    path = write(tmp_path, "demo_base:\n  steps: 5\n")
    params = load_params(path, ["demo_base.steps=7", "runtime.dtype=bfloat16", "demo_base.lr=1e-4"])
    assert (params.demo_base.steps, params.runtime.dtype, params.demo_base.lr) == (7, "bfloat16", 1e-4)

@pytest.mark.parametrize("text, overrides, expected", [
    ("demo_base:\n  stepz: 5\n", [], "demo_base.stepz: unknown key"),
    ("demo_base:\n  steps: many\n", [], "demo_base.steps: Input should be a valid integer"),
    ("demo_base:\n  steps: 0\n", [], "demo_base.steps: Input should be greater than or equal to 1"),
    ("runtime:\n  dtype: float8\n", [], "runtime.dtype: Input should be 'float32', 'bfloat16', 'float16' or 'float64'"),
    ("model:\n  revision: main\n", [], "model.revision: String should match pattern"),
    ("", ["colour.lr=1"], "colour: unknown key"),
    ("", ["runtime.seed=-1"], "runtime.seed: Input should be greater than or equal to 0"),
])
def test_bad_params_name_key_and_file(tmp_path, text, overrides, expected):
    path = write(tmp_path, text)
    with pytest.raises(ParamsError) as err:
        load_params(path, overrides)
    message = str(err.value)
    assert str(path) in message and expected in message and "\n" not in message

def test_malformed_override_and_yaml(tmp_path):
    with pytest.raises(ParamsError, match="'runtime.seed' is not key=value"):
        load_params(write(tmp_path, ""), ["runtime.seed"])
    with pytest.raises(ParamsError, match="top level must be a mapping"):
        load_params(write(tmp_path, "- a\n- b\n"))
    with pytest.raises(ParamsError, match="cannot read params"):
        load_params(tmp_path / "missing.yaml")

def test_overlay_merges_nested_keys_and_keeps_others(tmp_path, repo_root):
    path = write(tmp_path, (repo_root / "params.yaml").read_text())
    overlay = yaml.safe_load((repo_root / "overlays" / "ci.yaml").read_text())
    before = load_params(path)
    params = merge_overlay(path, repo_root / "overlays" / "ci.yaml")
    assert "lr" not in overlay["demo_base"] and before.demo_base.steps != overlay["demo_base"]["steps"]
    assert params.demo_base.steps == overlay["demo_base"]["steps"] and params.demo_base.lr == before.demo_base.lr
    assert load_params(path) == params

def test_bad_overlay_leaves_params_untouched(tmp_path, repo_root):
    path = write(tmp_path, (repo_root / "params.yaml").read_text())
    before = path.read_text()
    overlay = tmp_path / "bad.yaml"
    overlay.write_text("runtime:\n  threads: -3\n")
    with pytest.raises(ParamsError, match="runtime.threads"):
        merge_overlay(path, overlay)
    assert path.read_text() == before

def test_gtx1080_recipe_overlay_carries_the_safe_train_config(tmp_path, repo_root, caplog):
    from hildanext.train.profiles import micro_steps, resolve_profile
    from hildanext.train.wsd import wsd_phases
    path = write(tmp_path, (repo_root / "params.yaml").read_text())
    params = merge_overlay(path, repo_root / "overlays" / "gtx1080.yaml")
    profile = resolve_profile(params.runtime)
    assert (params.model.base, params.tokenize.seq_len, params.runtime.dtype) == ("models/qwen3-0.6b", 1024, "float32")
    assert micro_steps(params.wsd.batch_size, profile) == (1, 8) == micro_steps(params.sft.batch_size, profile)
    memory = (profile.grad_ckpt, profile.max_vram_pct, profile.adapter, profile.sdpa_backend)
    assert memory == (True, 0.85, "lora", "auto")
    lrs = (params.wsd.lr, params.wsd.lr_warmup_steps, params.sft.lr, params.sft.lr_warmup_steps)
    assert lrs == (1e-4, 100, 1e-4, 100)
    recipe, defaults = flatten(params), flatten(Params())
    overlay = flatten(yaml.safe_load((repo_root / "overlays" / "gtx1080.yaml").read_text()))
    inherited = [key for key in DEMO_VALUES if key not in overlay and recipe[key] != defaults[key]]
    assert inherited == [], f"the recipe must not inherit demo-only values: {inherited}"
    repo = flatten(load_params(path))
    assert {key: recipe[key] for key in RECIPE_VALUES} == {key: repo[key] for key in RECIPE_VALUES}
    with caplog.at_level("WARNING", logger="hildanext.train.wsd"):
        phases = wsd_phases(params.wsd, params.tokenize.seq_len)
    assert [ph.block_size for ph in phases] == [1, 4, 32, 64, 1024, 512, 256, 128, 64, 32] and caplog.records == []
    tokens = sum(ph.steps for ph in phases) * params.wsd.batch_size * params.tokenize.seq_len
    assert tokens == 5000 * 8 * 1024 and params.sft.steps * params.sft.batch_size * params.sft_data.seq_len == 8192000
    assert [s.kind for s in params.prepare.sources] == ["dolma", "tinystories"]
