"""The package's shape: no import circles, library messages without command-line text, test
files of a readable length."""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "hdr_gan_tf"


def module_name(path, root=ROOT):
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path, modules, root=ROOT):
    """The package's modules that `path` imports, at the top or inside functions."""
    name = module_name(path, root)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
            found |= {t if t in modules else base for t in targets}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    # A module imports its package's __init__ too, which must not lead back to it.
    return {m for m in found if m in modules and m != name}


def import_graph():
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def find_cycle(graph):
    """One import circle as a list of modules, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return trail[trail.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, trail + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_find_cycle_sees_a_circle_through_a_function_level_import(tmp_path):
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from hdr_gan_tf.merge import x\n")
    assert imports_of(source, {"hdr_gan_tf.merge"}, tmp_path) == {"hdr_gan_tf.merge"}


def test_no_import_circle_in_the_package():
    assert find_cycle(import_graph()) is None


# Modules whose imports stay outside the package: the low-level helpers everything may use.
LEAF_MODULES = ("hdr_gan_tf.arrays", "hdr_gan_tf.settings")


@pytest.mark.parametrize("module", LEAF_MODULES)
def test_low_level_modules_import_nothing_of_ours(module):
    assert import_graph()[module] == set()


# Library text may mention a flag only where it documents a program (docstrings).
FLAG_TEXT = re.compile(r"--([a-z][a-z0-9_]+|\{)")
PROGRAMS = ("hdr_gan_tf.cli", "hdr_gan_tf.web_page")


def flag_strings(path):
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    texts = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):  # an f-string, its values as "{}"
            texts.append("".join(part.value if isinstance(part, ast.Constant) else "{}"
                                 for part in node.values))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in docstrings):
            texts.append(node.value)
    return [text for text in texts if FLAG_TEXT.search(text)]


def test_library_messages_name_settings_not_flags():
    found = {module_name(p): flag_strings(p) for p in sorted(PACKAGE.rglob("*.py"))
             if not module_name(p).startswith(PROGRAMS)}
    assert {m: s for m, s in found.items() if s} == {}


def test_flag_strings_finds_a_flag_in_a_message_but_not_in_a_docstring(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('"""Use --tile."""\ndef f(flag):\n    raise ValueError("give --tile=0")\n'
                      'def g(flag):\n    raise ValueError(f"--{flag}: wrong")\n')
    assert flag_strings(source) == ["give --tile=0", "--{}: wrong"]


def test_no_test_file_is_over_600_lines():
    lengths = {p.name: len(p.read_text().splitlines())
               for p in (ROOT / "tests").glob("*.py")}
    assert {name: n for name, n in lengths.items() if n > 600} == {}


PLACEHOLDER = re.compile(r"\{[a-z][a-z0-9_]*\}")


def unannounced_placeholders(path):
    """Error calls whose f-string message marks a setting as `{name}` (written `{{name}}`)
    without naming it in `mentions`: the placeholder would reach the user as it is."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Call) and node.args
                and isinstance(node.args[0], ast.JoinedStr)):
            continue
        literal = "".join(part.value for part in node.args[0].values
                          if isinstance(part, ast.Constant))
        if PLACEHOLDER.search(literal) and "mentions" not in {k.arg for k in node.keywords}:
            found.append(f"{path.name}:{node.lineno}")
    return found


def test_every_setting_a_message_marks_is_announced(tmp_path):
    source = tmp_path / "m.py"
    source.write_text('def f(t):\n    raise E(f"{t}: set {{overwrite}}")\n'
                      'def g(t):\n    raise E(f"{t}: set {{overwrite}}", mentions=["overwrite"])\n')
    assert unannounced_placeholders(source) == ["m.py:2"]
    assert [hit for p in sorted(PACKAGE.rglob("*.py")) for hit in unannounced_placeholders(p)] == []
