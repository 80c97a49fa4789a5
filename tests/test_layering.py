"""The package's layers, read from its own import statements.

Every ``.py`` file of ``longclip_diffusers/`` is parsed (nothing is imported), relative imports
are resolved, and imports inside functions are kept with a flag. The rules proved here:

* no import cycle between modules. Only imports that run when a module is loaded count: an
  import inside a function is deferred on purpose, and one under ``if TYPE_CHECKING:`` never
  runs. Importing ``a.b.c`` also runs the ``__init__`` of ``a.b`` unless the importer already
  lives in it, so those edges count too;
* no cycle between layers (subpackages, and the top modules), counting every import: a deferred
  import may break a cycle at load time, but the two layers would still lean on each other;
* arrows point down: model code (``tulip``, ``conversion``, ``length``) imports no training,
  evaluation, reproduction, diffusers drop-in, ComfyUI glue, demo or CLI code, nor ``diffusers``
  or ``gradio``; the drop-in imports no training, evaluation, reproduction, demo or CLI code;
  nothing in the package imports, or loads by path, the repository's top-level ``demos/``,
  ``pipelines/``, ``training/`` or ``benchmarks/``. These hold for every import, deferred ones
  included;
* the package top holds at most 6 modules besides its subpackages;
* ``longclip-diffusers --help`` and every sub-command's ``--help`` load neither torch nor
  transformers nor diffusers.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "longclip_diffusers"
PACKAGE_DIR = REPO / PACKAGE

MODEL_LAYERS = ("tulip", "conversion", "length")
ABOVE_MODEL_CODE = ("training", "evaluation", "reproduction", "drop_in", "comfyui", "demo", "cli")
ABOVE_DROP_IN = ("training", "evaluation", "reproduction", "demo", "cli")
HOSTS_MODEL_CODE_MUST_NOT_IMPORT = ("diffusers", "gradio")
#: The repository's top-level folders of scripts, nodes and benchmarks: not part of the package.
TOP_LEVEL_FOLDERS = ("demos", "pipelines", "training", "benchmarks")
#: Calls that run a Python file found by path instead of importing a package module.
PATH_LOADERS = ("spec_from_file_location", "run_path", "SourceFileLoader", "load_source")
MAX_TOP_LEVEL_MODULES = 6
HEAVY_MODULES = ("torch", "transformers", "diffusers")


@dataclass(frozen=True)
class Import:
    """One imported module, as the importing file names it after resolution."""

    importer: str
    target: str
    line: int
    deferred: bool  # inside a function body: runs on call, not on load
    type_checking_only: bool  # under ``if TYPE_CHECKING:``: never runs

    @property
    def runs_on_load(self) -> bool:
        return not (self.deferred or self.type_checking_only)

    def where(self) -> str:
        path = module_path(self.importer).relative_to(REPO)
        return f"{path}:{self.line} imports {self.target}"


@cache
def package_modules() -> dict[str, Path]:
    """Dotted name -> file, for every module of the package (a package by its ``__init__``)."""
    modules = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def module_path(name: str) -> Path:
    return package_modules()[name]


def is_package(name: str) -> bool:
    return module_path(name).name == "__init__.py"


def resolve(importer: str, level: int, module: str | None) -> str:
    """The absolute name of ``from <'.' * level><module> import ...`` written in ``importer``."""
    if level == 0:
        return module or ""
    base = importer.split(".")
    if not is_package(importer):
        base = base[:-1]
    if level > 1:
        base = base[: -(level - 1)]
    return ".".join(base + ([module] if module else []))


class _ImportCollector(ast.NodeVisitor):
    def __init__(self, importer: str) -> None:
        self.importer = importer
        self.imports: list[Import] = []
        self._function_depth = 0
        self._type_checking_depth = 0

    def _add(self, target: str, line: int) -> None:
        self.imports.append(
            Import(self.importer, target, line, self._function_depth > 0, self._type_checking_depth > 0)
        )

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = resolve(self.importer, node.level, node.module)
        for alias in node.names:
            # ``from pkg import name`` imports the submodule pkg.name when there is one
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in package_modules() else base, node.lineno)

    def _visit_function(self, node: ast.AST) -> None:
        self._function_depth += 1
        self.generic_visit(node)
        self._function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = _visit_function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        guarded = (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
            isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
        )
        if not guarded:
            self.generic_visit(node)
            return
        self._type_checking_depth += 1
        for child in node.body:
            self.visit(child)
        self._type_checking_depth -= 1
        for child in node.orelse:
            self.visit(child)


@cache
def parsed(name: str) -> ast.Module:
    return ast.parse(module_path(name).read_text(encoding="utf-8"), filename=str(module_path(name)))


@cache
def all_imports() -> tuple[Import, ...]:
    found: list[Import] = []
    for name in package_modules():
        collector = _ImportCollector(name)
        collector.visit(parsed(name))
        found.extend(collector.imports)
    return tuple(found)


def in_layer(module: str, layer: str) -> bool:
    prefix = f"{PACKAGE}.{layer}"
    return module == prefix or module.startswith(prefix + ".")


def top_name(module: str) -> str:
    return module.split(".")[0]


def modules_loaded_by(imp: Import) -> list[str]:
    """The package modules whose code runs for ``imp``: the target and every package ``__init__``
    on the way to it that the importer is not already inside."""
    if imp.target not in package_modules():
        return []
    parts = imp.target.split(".")
    loaded = []
    for end in range(2, len(parts) + 1):
        name = ".".join(parts[:end])
        inside = imp.importer == name or imp.importer.startswith(name + ".")
        if name in package_modules() and (end == len(parts) or not inside):
            loaded.append(name)
    return loaded


def load_time_graph() -> dict[str, dict[str, Import]]:
    """importer -> {module it loads: the import statement responsible}."""
    graph: dict[str, dict[str, Import]] = {name: {} for name in package_modules()}
    for imp in all_imports():
        if imp.runs_on_load:
            for loaded in modules_loaded_by(imp):
                if loaded != imp.importer:
                    graph[imp.importer].setdefault(loaded, imp)
    return graph


def find_cycle(graph: dict[str, dict[str, Import]]) -> list[Import]:
    """One cycle as the import statements that close it, or [] when the graph has none."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[Import]:
        stack.append(node)
        on_stack.add(node)
        for target in graph[node]:
            if target in on_stack:
                cycle_nodes = stack[stack.index(target) :] + [target]
                return [graph[a][b] for a, b in zip(cycle_nodes, cycle_nodes[1:])]
            if target not in done:
                cycle = visit(target)
                if cycle:
                    return cycle
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return []

    for start in graph:
        if start not in done:
            cycle = visit(start)
            if cycle:
                return cycle
    return []


def wrong_arrows(layers: tuple[str, ...], forbidden_layers: tuple[str, ...], forbidden_hosts=()) -> list[str]:
    return [
        imp.where()
        for imp in all_imports()
        if any(in_layer(imp.importer, layer) for layer in layers)
        and (any(in_layer(imp.target, layer) for layer in forbidden_layers) or top_name(imp.target) in forbidden_hosts)
    ]


# ----------------------------------------------------------------------------- the walker itself


def test_the_walker_resolves_relative_imports_and_flags_deferred_and_type_checking_imports():
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import metrics\n"
        "from ..errors import LongClipError\n"
        "if TYPE_CHECKING:\n"
        "    from ..drop_in import swap_encoders\n"
        "def run():\n"
        "    import torch\n"
    )
    collector = _ImportCollector(f"{PACKAGE}.evaluation")
    collector.visit(ast.parse(source))
    found = {imp.target: (imp.deferred, imp.type_checking_only) for imp in collector.imports}
    assert found == {
        "typing": (False, False),
        f"{PACKAGE}.evaluation.metrics": (False, False),
        f"{PACKAGE}.errors": (False, False),
        f"{PACKAGE}.drop_in.swap_encoders": (False, True),
        "torch": (True, False),
    }
    # a plain module resolves against its package, not against itself
    assert resolve(f"{PACKAGE}.errors", 1, "constants") == f"{PACKAGE}.constants"


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_chain():
    def edge(a: str, b: str) -> Import:
        return Import(a, b, 1, deferred=False, type_checking_only=False)

    chain = {"a": {"b": edge("a", "b")}, "b": {"c": edge("b", "c")}, "c": {}}
    assert find_cycle(chain) == []
    loop = {"a": {"b": edge("a", "b")}, "b": {"c": edge("b", "c")}, "c": {"a": edge("c", "a")}}
    assert [imp.target for imp in find_cycle(loop)] == ["b", "c", "a"]


# ----------------------------------------------------------------------------- the rules


def test_no_import_cycle_between_modules_at_load_time():
    cycle = find_cycle(load_time_graph())
    assert not cycle, "import cycle:\n  " + "\n  ".join(imp.where() for imp in cycle)


def layer_of(module: str) -> str:
    """``longclip_diffusers.length.stretching`` -> ``length``; a top module is its own layer."""
    return module.split(".")[1]


def test_no_cycle_between_layers_even_through_imports_inside_functions():
    # A cycle between two subpackages broken only by a deferred import is still a tangle: one of
    # the two must sit below the other. The package's __init__ is left out: it is the lazy
    # public facade that re-exports every layer.
    graph: dict[str, dict[str, Import]] = {}
    for imp in all_imports():
        if imp.importer == PACKAGE or imp.target == PACKAGE or top_name(imp.target) != PACKAGE:
            continue
        source, target = layer_of(imp.importer), layer_of(imp.target)
        graph.setdefault(target, {})
        if source != target:
            graph.setdefault(source, {}).setdefault(target, imp)
    cycle = find_cycle(graph)
    assert not cycle, "layers importing each other:\n  " + "\n  ".join(imp.where() for imp in cycle)


def test_model_code_imports_no_training_evaluation_drop_in_comfyui_demo_or_cli_code():
    assert wrong_arrows(MODEL_LAYERS, ABOVE_MODEL_CODE) == []


def test_model_code_imports_neither_diffusers_nor_gradio():
    assert wrong_arrows(MODEL_LAYERS, (), HOSTS_MODEL_CODE_MUST_NOT_IMPORT) == []


def test_the_diffusers_drop_in_imports_no_training_evaluation_reproduction_demo_or_cli_code():
    assert wrong_arrows(("drop_in",), ABOVE_DROP_IN) == []


def test_the_package_imports_none_of_the_top_level_folders():
    # Inside the package ``training`` is resolved to longclip_diffusers.training; a bare
    # ``training`` (or ``demos``, ...) can only be the repository's top-level folder.
    assert [imp.where() for imp in all_imports() if top_name(imp.target) in TOP_LEVEL_FOLDERS] == []


def path_loading(tree: ast.Module, label: str) -> list[str]:
    """Places in ``tree`` that run a file by path or point a path into a top-level folder."""
    found = []
    for node in ast.walk(tree):
        where = f"{label}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in PATH_LOADERS:
                found.append(f"{where} calls {called}")
            if isinstance(func, ast.Attribute) and ast.unparse(func.value) == "sys.path":
                found.append(f"{where} changes sys.path")
            if called in ("join", "joinpath", "Path", "PurePath") and _names_top_level_folder(node.args):
                found.append(f"{where} builds a path into a top-level folder")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            if _names_top_level_folder([node.left, node.right]):
                found.append(f"{where} builds a path into a top-level folder")
    return found


def _names_top_level_folder(nodes: list[ast.expr]) -> bool:
    return any(isinstance(node, ast.Constant) and node.value in TOP_LEVEL_FOLDERS for node in nodes)


def test_the_package_loads_no_code_by_file_path():
    hits = [hit for name, path in package_modules().items() for hit in path_loading(parsed(name), str(path))]
    assert hits == []


def test_the_path_check_catches_spec_from_file_location_sys_path_and_path_joins():
    source = (
        "spec = importlib.util.spec_from_file_location('app', ROOT / 'demos' / 'gradio_app.py')\n"
        "sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))\n"
        "runpy.run_path('x.py')\n"
    )
    hits = path_loading(ast.parse(source), "probe")
    assert sorted(hit.split(" ", 1)[1] for hit in hits) == [
        "builds a path into a top-level folder",
        "builds a path into a top-level folder",
        "calls run_path",
        "calls spec_from_file_location",
        "changes sys.path",
    ]


def test_the_package_top_holds_at_most_six_modules_besides_subpackages():
    top_modules = sorted(p.name for p in PACKAGE_DIR.glob("*.py") if p.name != "__init__.py")
    assert len(top_modules) <= MAX_TOP_LEVEL_MODULES, top_modules


# ----------------------------------------------------------------------------- a light CLI


def _help_commands() -> list[list[str]]:
    """``[]`` (the top command) and every sub-command path, nested ones included."""
    from longclip_diffusers.cli.main import build_parser

    commands: list[list[str]] = [[]]

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    commands.append(path + [name])
                    walk(sub, path + [name])

    walk(build_parser(), [])
    return commands


_PROBE = """
import json, sys
from longclip_diffusers.cli.main import main
try:
    main(sys.argv[1:] + ["--help"])
except SystemExit as exit:
    code = exit.code
else:
    code = "no SystemExit"
print(json.dumps({"code": code, "loaded": sorted({name.split(".")[0] for name in sys.modules})}))
"""


@pytest.mark.parametrize("command", _help_commands(), ids=lambda c: " ".join(c) or "top")
def test_help_loads_neither_torch_nor_transformers_nor_diffusers(command):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, *command],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["code"] == 0, result.stderr
    heavy = [name for name in HEAVY_MODULES if name in report["loaded"]]
    assert heavy == [], f"`{' '.join(['longclip-diffusers', *command, '--help'])}` imported {heavy}"
