"""The package's shape, checked from its source: dependencies point one way, modules stay
small enough to read, each option is written once, and the generated settings schema is the
one committed."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from codeflow_magic import cli
from codeflow_magic.options import OPTIONS, lab_schema, magic_line_parser

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "codeflow_magic"
MAX_LINES = 900
PURE = ("flow", "planning", "runstate", "rollback", "prompts", "models", "events", "analysis")
"""The loop and what it is made of: no IPython, SDK, Docker or Jupyter server in them."""
FOREIGN = ("IPython", "ipykernel", "anthropic", "openai", "docker", "jupyter_server")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        if "labextension" in path.relative_to(PACKAGE).parts:
            continue
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, known: dict[str, Path]) -> Iterator[str]:
    """Every module `name` imports, at the top or inside a function (not under
    TYPE_CHECKING, which never runs)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, *([node.module] if node.module else [])])
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield sub if sub in known else target


def _graph() -> dict[str, set[str]]:
    known = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        edges = set()
        for target in _imports(name, path, known):
            while target not in known and "." in target:
                target = target.rpartition(".")[0]
            if target in known and target != name:
                edges.add(target)
        graph[name] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_sees_a_cycle_through_a_function_level_import(tmp_path: Path) -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    module = tmp_path / "m.py"
    module.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .x import y\n"
        "def f():\n    from .z import w\n",
        encoding="utf-8",
    )
    got = set(_imports("pkg.m", module, {"pkg.x": module, "pkg.z": module}))
    assert got == {"typing", "pkg.z"}


def test_no_import_cycle_in_the_package_counting_imports_inside_functions() -> None:
    assert _cycles(_graph()) == []


def test_the_loop_knows_nothing_of_ipython_the_sdks_or_docker() -> None:
    known = _modules()
    for short in PURE:
        name = f"codeflow_magic.{short}"
        foreign = [t for t in _imports(name, known[name], known) if t.split(".")[0] in FOREIGN]
        assert foreign == [], name


def test_nothing_but_the_command_line_imports_the_command_line() -> None:
    graph = _graph()
    importers = {
        name
        for name, edges in graph.items()
        if any(e == "codeflow_magic.cli" or e.startswith("codeflow_magic.cli.") for e in edges)
        and not name.startswith("codeflow_magic.cli")
    }
    assert importers == set()


def test_no_module_over_900_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules().values()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert long == {}


def _all_flags() -> set[str]:
    flags = {f for option in OPTIONS.values() for f in option.flags if f.startswith("-")}
    parsers = [cli.build_parser(), magic_line_parser()]
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags.update(action.option_strings)
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                parsers.extend(choices.values())
    return flags - {"-h", "--help", "--version"}


DEFINERS = {"add_argument", "argument", "Option"}
"""Calls that define an option: argparse's, IPython's `@argument` and the option table's."""


def test_each_flag_is_written_in_one_source_file() -> None:
    """Where a flag is defined (other programs' flags, such as sed's `--in-place` in the
    scanner's rules, are not codeflow's options)."""
    homes: dict[str, set[str]] = {}
    for path in _modules().values():
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(call, ast.Call):
                continue
            func = call.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in DEFINERS:
                continue
            for arg in call.args:
                for node in ast.walk(arg):
                    if isinstance(node, ast.Constant) and isinstance(node.value, str):
                        homes.setdefault(node.value, set()).add(str(path.relative_to(ROOT)))
    flags = _all_flags()
    assert {"--max-attempts", "--cell-timeout", "--fail-on", "--http"} <= flags
    spread = {f: sorted(homes.get(f, ())) for f in flags if len(homes.get(f, ())) != 1}
    assert spread == {}


def test_the_committed_settings_schema_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "labextension" / "schema" / "plugin.json").read_text())
    assert committed == lab_schema(), "run `make schema` and commit the result"


def test_the_schema_takes_its_bounds_and_choices_from_the_settings() -> None:
    from codeflow_magic.config import CodeflowExecution, CodeflowImprovement

    props = lab_schema()["properties"]
    attempts = CodeflowImprovement.class_traits()["max_attempts"]
    assert (props["maxAttempts"]["minimum"], props["maxAttempts"]["maximum"]) == (
        attempts.min,
        attempts.max,
    )
    assert props["maxAttempts"]["default"] == attempts.default_value
    backends = CodeflowExecution.class_traits()["backend"].values
    assert sorted(props["backend"]["enum"]) == sorted(backends)
    assert props["backend"]["enum"][0] == props["backend"]["default"] == "inline"


@pytest.mark.parametrize("line", ["--max-attempts 51", "--timeout nan", "--focus speed"])
def test_the_magic_and_the_command_line_refuse_the_same_values(
    line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse
    import shlex

    with pytest.raises(argparse.ArgumentError) as magic:
        magic_line_parser().parse_args(shlex.split(line))
    assert cli.main(["ask", "x", *shlex.split(line)]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert str(magic.value).split(": ", 1)[1] in err
