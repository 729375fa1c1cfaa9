# The owner's style rule, enforced on every Python file git sees (the same rules as
# ../shared/tools/style_check.py): one 3-6 line header comment block, at most one further comment line,
# no blank line inside a block and no runs of blank lines, one-line docstrings, lines <= 120 columns,
# modules <= 400 lines and functions <= 50 lines; package functions take at most 6 parameters (command-line
# entry points excepted). The checker is tested on hand-written bad sources.
import ast, subprocess
from pathlib import Path
import pytest
REPO = Path(__file__).resolve().parents[1]
def python_files():
    cmd = ["git", "ls-files", "-co", "--exclude-standard", "*.py"]
    out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True).stdout
    return [f for f in out.split() if not f.startswith(("vendor/", "data/", "models/")) and (REPO / f).exists()]

def header_lines(lines):
    start = 1 if lines and lines[0].startswith("#!") else 0
    n = 0
    while start + n < len(lines) and lines[start + n].lstrip().startswith("#"):
        n += 1
    return n, start + n

def blank_line_findings(lines):
    found = []
    for i in range(1, len(lines) - 1):
        if not lines[i].strip() and lines[i + 1][:1] in (" ", "\t") and lines[i + 1].strip():
            found.append(f"{i + 1}: blank line inside a block")
        top_level = lines[i + 1].startswith(("def ", "class ", "@", "async def "))
        if not lines[i].strip() and not lines[i - 1].strip() and not top_level:
            found.append(f"{i + 1}: run of blank lines")
    return found

def ast_findings(text):
    found = []
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            doc = ast.get_docstring(node, clean=False)
            if doc and "\n" in doc.strip():
                found.append(f"{getattr(node, 'lineno', 1)}: multi-line docstring")
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 50:
            found.append(f"{node.lineno}: function {node.name} has {node.end_lineno - node.lineno + 1} lines (cap 50)")
    return found

def style_findings(text: str) -> list[str]:
    lines = text.splitlines()
    n, end = header_lines(lines)
    found = [] if 3 <= n <= 6 else [f"1: header comment block has {n} lines (want 3-6)"]
    extra = [i + 1 for i, line in enumerate(lines) if i >= end and line.lstrip().startswith("#")]
    found += [f"{extra[0]}: {len(extra)} comment lines after the header"] if len(extra) > 1 else []
    found += [f"{len(lines)} lines (cap 400)"] if len(lines) > 400 else []
    found += [f"{i + 1}: line has {len(line)} columns (cap 120)" for i, line in enumerate(lines) if len(line) > 120]
    return found + blank_line_findings(lines) + ast_findings(text)

GOOD = "# a\n# b\n# c\nimport os\ndef f():\n    return 1\n\ndef g():\n    return '" + "y" * 107 + "'\n"
@pytest.mark.parametrize("source, expected", [
    ("# only one\nimport os\n", "header comment block has 1 lines"),
    ("# a\n# b\n# c\ndef f():\n    x = 1\n\n    return x\n", "blank line inside a block"),
    ("# a\n# b\n# c\nx = 1\n\n\ny = 2\n", "run of blank lines"),
    ("# a\n# b\n# c\nx = 1\n# one\n# two\n", "2 comment lines after the header"),
    ('# a\n# b\n# c\ndef f():\n    """Line one.\n    line two."""\n', "multi-line docstring"),
    ("# a\n# b\n# c\ndef f():\n" + "    x = 1\n" * 50, "function f has 51 lines"),
    ("# a\n# b\n# c\n" + "x = 1\n" * 400, "403 lines (cap 400)"),
    ("# a\n# b\n# c\nx = '" + "y" * 115 + "'\n", "4: line has 121 columns (cap 120)"),
])
def test_checker_catches_each_rule(source, expected):
    assert any(expected in f for f in style_findings(source)) and style_findings(GOOD) == []

def test_every_python_file_follows_the_rule():
    files = python_files()
    assert len(files) > 10
    found = [f"{f}:{x}" for f in files for x in style_findings((REPO / f).read_text())]
    assert found == [], "\n".join(found)

COMMAND_LINES = {("src/hildanext/assets/sandbox_runner.py", "main")}
def long_signatures(text: str, path: str = "") -> list[str]:
    """Functions with more than 6 parameters (self/cls not counted), except typer commands and COMMAND_LINES."""
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or (path, node.name) in COMMAND_LINES:
            continue
        command = any(isinstance(d, ast.Call) and getattr(d.func, "attr", "") == "command" for d in node.decorator_list)
        a = node.args
        names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs if x.arg not in ("self", "cls")]
        if len(names) > 6 and not command:
            found.append(f"{node.lineno}: {node.name} takes {len(names)} parameters (cap 6: pass a params object)")
    return found

def test_package_functions_take_a_params_object_beyond_six_parameters():
    bad = "def f(a, b, c, d, e, f, g):\n    pass\n\nclass C:\n    def m(self, a, b, c, d, e, f):\n        pass\n"
    cli = "@app.command('x')\ndef f(a, b, c, d, e, f, g):\n    pass\n"
    assert long_signatures(bad) == ["1: f takes 7 parameters (cap 6: pass a params object)"]
    assert long_signatures(cli) == []
    files = [f for f in python_files() if f.startswith("src/")]
    found = [f"{f}:{x}" for f in files for x in long_signatures((REPO / f).read_text(), f)]
    assert found == [], "\n".join(found)
