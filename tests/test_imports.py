# The import graph of src/hildanext, read with ast (nothing is imported): module-level and function-level
# hildanext imports form no cycle and stay inside the layer table LAYERS (cli -> pipeline -> train/decode/eval/serve
# -> data/model -> config), and no module outside pipeline/ holds a repository path literal (models/, data/,
# metrics/). The checkers are also run on hand-made graphs and sources so they cannot pass vacuously.
import ast
from pathlib import Path
import pytest
SRC = Path(__file__).resolve().parents[1] / "src" / "hildanext"
LIBRARY = ("config", "files", "model", "tracking", "data", "train", "decode", "eval", "serve")
LAYERS = {
    "config": ("config",),
    "files": ("config",),
    "model": ("config", "files"),
    "tracking": ("config", "files"),
    "data": ("config", "files", "model", "data"),
    "train": ("config", "files", "model", "data", "train"),
    "decode": ("config", "files", "model", "data.demo_tokenizer", "data.demo_corpus", "decode"),
    "eval": ("config", "files", "model", "data", "decode", "eval", "train.objective", "train.masks"),
    "serve": ("config", "files", "model", "data", "decode", "serve", "train.profiles"),
    "pipeline": (*LIBRARY, "pipeline"),
    "cli": (*LIBRARY, "pipeline", "cli", "__init__"),
    "__init__": ("cli",),
    "__main__": ("cli",),
    "assets": ("config", "model", "eval"),
}
PATH_PREFIXES = ("models/", "data/", "metrics/")
PATH_ALLOWED = {"config": "dataclass field defaults: the params defaults",
                "config.decode": "dataclass field defaults, e.g. serve.model_candidates"}
def module_name(path: Path, root: Path = SRC) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1]) if parts[-1] == "__init__" and len(parts) > 1 else ".".join(parts)

def short(full: str) -> str:
    return "__init__" if full == "hildanext" else full.removeprefix("hildanext.")

def resolve(full: str, known: set[str]) -> str | None:
    parts = full.split(".")
    while parts and short(".".join(parts)) not in known:
        parts.pop()
    return short(".".join(parts)) if parts else None

def imported_names(node: ast.AST, package: list[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = ["hildanext", *package[: len(package) - node.level + 1]] if node.level else []
    prefix = ".".join(base + ([node.module] if node.module else []))
    return [f"{prefix}.{a.name}" for a in node.names]

def imports_of(source: str, name: str, known: set[str], is_package: bool = False) -> set[str]:
    """Every hildanext module `name` imports, at module level or inside functions."""
    package = [] if name == "__init__" else name.split(".") if is_package else name.split(".")[:-1]
    names = [n for node in ast.walk(ast.parse(source)) for n in imported_names(node, package)]
    found = {resolve(n, known) for n in names if n == "hildanext" or n.startswith("hildanext.")}
    return found - {None, name}

def import_graph(root: Path = SRC) -> dict[str, set[str]]:
    files = {module_name(p, root): p for p in sorted(root.rglob("*.py"))}
    known = set(files)
    return {n: imports_of(p.read_text(), n, known, p.name == "__init__.py") for n, p in files.items()}

def layer_of(module: str) -> str:
    return module if module in ("__init__", "__main__") else module.split(".")[0]

def layer_violations(graph: dict[str, set[str]], layers: dict = LAYERS) -> list[str]:
    found = [f"{m}: layer {layer_of(m)!r} is not in LAYERS" for m in graph if layer_of(m) not in layers]
    for module, targets in sorted(graph.items()):
        allowed = layers.get(layer_of(module), ())
        found += [f"{module} -> {t}" for t in sorted(targets)
                  if not any(t == a or t.startswith(a + ".") for a in allowed)]
    return found

def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            found.extend([sorted(component)] if len(component) > 1 else [])
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found

def field_defaults(tree: ast.Module) -> set[int]:
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    values = [s.value for c in classes for s in c.body if isinstance(s, ast.AnnAssign) and s.value is not None]
    return {id(n) for v in values for n in ast.walk(v)}

def path_literals(source: str, name: str) -> list[str]:
    tree = ast.parse(source)
    docs = {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef))
            and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    allowed = docs | (field_defaults(tree) if name in PATH_ALLOWED else set())
    hits = [n for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and n.value.startswith(PATH_PREFIXES) and id(n) not in allowed]
    return [f"{name}:{n.lineno}: {n.value!r}" for n in sorted(hits, key=lambda n: (n.lineno, n.col_offset))]

def test_checker_finds_imports_at_every_level():
    known = {"config", "model", "decode", "decode.decoder", "decode.remask", "__init__"}
    source = ("import os\nimport hildanext\nfrom hildanext.config import Params\nfrom . import remask\n"
              "from ..model import load_model\ndef f():\n    from hildanext.decode.decoder import generate_ids\n")
    expected = {"__init__", "config", "decode.remask", "model", "decode.decoder"}
    assert imports_of(source, "decode.settings", known) == expected
    package = imports_of("from . import decoder\nfrom .remask import x\n", "decode", known, True)
    assert package == {"decode.decoder", "decode.remask"}

def test_checker_reports_cycles_and_forbidden_edges():
    graph = {"config": set(), "model": {"config"}, "decode.a": {"decode.b", "model"}, "decode.b": {"decode.a"},
             "serve.app": {"decode.a", "train.loop"}, "train.loop": {"config"}, "extra.x": set()}
    assert cycles(graph) == [["decode.a", "decode.b"]]
    assert layer_violations(graph) == ["extra.x: layer 'extra' is not in LAYERS", "serve.app -> train.loop"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == [] and layer_violations({"model": {"config"}}) == []

def test_checker_reports_path_literals_but_not_docstrings_or_allowed_defaults():
    source = ('def f():\n    "models/x is described here."\n    return "models/init", f"data/{1}"\n'
              'class P:\n    a: str = "metrics/m"\n')
    expected = ["train.wsd:3: 'models/init'", "train.wsd:3: 'data/'", "train.wsd:5: 'metrics/m'"]
    assert path_literals(source, "train.wsd") == expected
    assert path_literals(source, "config") == ["config:3: 'models/init'", "config:3: 'data/'"]

@pytest.fixture(scope="module")
def graph():
    out = import_graph()
    assert len(out) > 30 and sum(map(len, out.values())) > 50 and "decode.decoder" in out["decode.engines"]
    return out

def test_no_import_cycle(graph):
    found = cycles(graph)
    assert found == [], "\n".join(" <-> ".join(c) for c in found)

def test_imports_stay_inside_the_layer_table(graph):
    found = layer_violations(graph)
    assert found == [], "\n".join(found)

def test_no_repository_path_outside_pipeline():
    files = [(module_name(p), p) for p in sorted(SRC.rglob("*.py"))]
    found = [x for name, p in files if layer_of(name) != "pipeline" for x in path_literals(p.read_text(), name)]
    assert len(files) > 30 and found == [], "\n".join(found)
