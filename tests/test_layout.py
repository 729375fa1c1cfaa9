# Repository layout and pins from the foundation issue: required top-level entries, vendor submodules as
# gitlinks at the pinned commits with a hand-written .gitmodules, nothing importing from vendor/, stage
# entry scripts that only call hildanext.pipeline.run_stage, and DVC analytics off in the committed config.
import configparser, re, subprocess
from pathlib import Path
REPO = Path(__file__).resolve().parents[1]
PINS = {"vendor/dinfer": ("https://github.com/inclusionAI/dInfer.git", "fce4e32804103baa5d55230dff0352da0cdd6ceb"),
        "vendor/llada": ("https://github.com/ML-GSAI/LLaDA.git", "b7e6c3565f194352da44b38dd12b6970597309f3"),
        "vendor/smdm": ("https://github.com/ML-GSAI/SMDM.git", "583aa4716d17728dbb825aec6c24a121164d616a")}
def test_required_top_level_layout():
    for name in ("stages", "src/hildanext", "params.yaml", "dvc.yaml", "dvc.lock", "data", "models", "metrics", "docs",
                 "tests", "benchmarks", "VERSIONS.md", "DESIGN.md", "README.md", "pyproject.toml", "Makefile",
                 ".ci/run", ".dvc/config", "overlays/ci.yaml"):
        assert (REPO / name).exists(), name

def test_vendor_gitlinks_are_pinned():
    cmd = ["git", "ls-files", "-s", "vendor"]
    staged = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True).stdout.splitlines()
    links = {line.split()[3]: (line.split()[0], line.split()[1]) for line in staged}
    assert links == {path: ("160000", sha) for path, (_, sha) in PINS.items()}
    modules = configparser.ConfigParser()
    modules.read(REPO / ".gitmodules")
    urls = {modules[s]["path"]: modules[s]["url"] for s in modules.sections()}
    assert urls == {p: url for p, (url, _) in PINS.items()}

def test_nothing_imports_vendor_and_no_step_recurses_submodules():
    sources = [p for d in ("src", "stages", "tests", "benchmarks") for p in (REPO / d).rglob("*.py")]
    assert not [p for p in sources if re.search(r"^\s*(from|import)\s+vendor\b", p.read_text(), re.M)]
    for name in ("Makefile", ".ci/run"):
        assert "submodule" not in (REPO / name).read_text()

def test_stage_scripts_are_thin_entries():
    for script in (REPO / "stages").glob("*.py"):
        text = script.read_text()
        assert f'run_stage("{script.stem}")' in text and len(text.splitlines()) <= 10, script

def test_dvc_analytics_off():
    config = (REPO / ".dvc/config").read_text()
    assert re.search(r"analytics\s*=\s*false", config)
