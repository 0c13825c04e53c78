"""The package's layers point one way: a module imports only its own layer or those below it, and only cli.py
imports a stage. The graph counts every import, also those inside functions (how most code is loaded).

    0  errors, io, progress, schema, config, tracking, layout   plumbing
    1  data, features, stats, validation               pure science and data checks
    2  models                                           builders, loading, inference
    3  training                                         fitting, evaluation, saving
    4  tuning, registry, report                         searches, the model registry, figures and pages
    5  stages                                           one thin module per command / DVC stage
    6  cli
"""

from __future__ import annotations

import ast
import importlib.util

from tests.conftest import PROJECT

_spec = importlib.util.spec_from_file_location("dvc_code_deps", PROJECT / "scripts" / "dvc_code_deps.py")
deps_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deps_tool)

LAYERS = {
    "errors": 0, "io": 0, "progress": 0, "schema": 0, "config": 0, "tracking": 0, "layout": 0,
    "data": 1, "features": 1, "stats": 1, "validation": 1,
    "models": 2,
    "training": 3,
    "tuning": 4, "registry": 4, "report": 4,
    "stages": 5,
    "cli": 6,
}


def import_edges() -> list[tuple[str, str]]:
    """``(importer, imported)`` gliomics module names for every import in src/gliomics."""
    edges = []
    for path in sorted((deps_tool.SRC / "gliomics").rglob("*.py")):
        name = ".".join(path.relative_to(deps_tool.SRC).with_suffix("").parts).removesuffix(".__init__")
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges += [(name, target) for target in deps_tool.imported_modules(ast.parse(path.read_text()), package)]
    return edges


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def test_every_part_of_the_package_has_a_layer():
    parts = {p.stem for p in (deps_tool.SRC / "gliomics").iterdir()
             if (p.suffix == ".py" or p.is_dir()) and p.stem not in ("__init__", "__pycache__")}
    assert parts <= set(LAYERS), sorted(parts - set(LAYERS))


def test_no_import_points_to_a_higher_layer():
    upward = [(a, b) for a, b in import_edges()
              if part(a) in LAYERS and part(b) in LAYERS and LAYERS[part(b)] > LAYERS[part(a)]]
    assert upward == []


def test_only_cli_imports_a_stage():
    assert [(a, b) for a, b in import_edges() if part(b) == "stages" and a != "gliomics.cli"] == []


def test_no_import_cycle_between_modules():
    graph: dict[str, set[str]] = {}
    for a, b in import_edges():
        if a != b and not a.startswith(b + "."):  # a package's own __init__ imported by its modules is no cycle
            graph.setdefault(a, set()).add(b)
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt] if nxt in stack else [node, nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert cycles == []


#: Imports that stay inside functions, with the reason (everything else sits at the top of its module).
FUNCTION_LEVEL_IMPORTS = {
    ("gliomics.models.resnet_classifier", "keras_cv"),  # under a stdout redirect: keras-cv prints on import
    ("gliomics.stages.train", "mlflow"),  # only when the run is tracked (--no-mlflow trains without it)
    ("gliomics.stages.train_classifier", "mlflow"),  # the same
    # MLflow's import takes seconds: plumbing imported everywhere, loading a local model folder and analyze
    # with --model never pay for it (tests/report/test_analyze_speed.py)
    ("gliomics.tracking", "mlflow"),
    ("gliomics.models.inference", "mlflow"),
    ("gliomics.models.packaging", "mlflow"),
    ("gliomics.registry.shipped", "gliomics.registry.listing"),
    ("gliomics.stages.analyze", "gliomics.registry.listing"),
    ("gliomics.training.metrics", "tensorflow"),  # the NumPy metrics serve evaluate without TensorFlow
}


def function_level_imports(path) -> list[str]:
    """The modules imported inside a function of the file at ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found += [alias.name for alias in inner.names]
                elif isinstance(inner, ast.ImportFrom):
                    found.append("." * inner.level + (inner.module or ""))
    return found


def test_imports_sit_at_the_top_of_their_module():
    """Only cli.py (so that `gliomics --help` stays light) and the listed exceptions import inside functions."""
    misplaced = []
    for path in sorted((deps_tool.SRC / "gliomics").rglob("*.py")):
        name = ".".join(path.relative_to(deps_tool.SRC).with_suffix("").parts)
        if name == "gliomics.cli":
            continue
        misplaced += [f"{name}: {imported}" for imported in function_level_imports(path)
                      if (name, imported) not in FUNCTION_LEVEL_IMPORTS]
    assert not misplaced, "imports inside functions (move them to the module top): " + ", ".join(misplaced)


def test_no_test_module_imports_another():
    """Shared fixtures live in conftest.py, shared helpers in helper modules; a test module is never imported."""
    offending = []
    for path in sorted((PROJECT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            modules = ([alias.name for alias in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offending += [f"{path.relative_to(PROJECT)}: {m}" for m in modules if m.rpartition(".")[2].startswith("test_")]
    assert not offending, offending
