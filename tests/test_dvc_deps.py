"""dvc.yaml lists, for every stage, all the project code the stage runs.

The code a stage runs is derived from the import graph (``scripts/dvc_code_deps.py``): the ``gliomics``
subcommand in the stage's ``cmd``, its handler in cli.py, and every gliomics module that handler imports,
directly or through other modules (imports inside functions included). Each such module must lie under one
of the stage's ``deps`` (the file itself or a folder above it); otherwise editing it would leave the stage's
outputs stale while ``dvc status`` says they are up to date. ``python scripts/dvc_code_deps.py --write``
fixes dvc.yaml.
"""

from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import PROJECT

_spec = importlib.util.spec_from_file_location("dvc_code_deps", PROJECT / "scripts" / "dvc_code_deps.py")
deps_tool = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(deps_tool)
STAGES = list(deps_tool.stages())


@pytest.mark.parametrize("stage,command,deps", STAGES, ids=[s[0] for s in STAGES])
def test_every_module_a_stage_runs_is_a_dependency(stage, command, deps):
    src = deps_tool.SRC
    code = deps_tool.closure(deps_tool.handler_modules(command))
    covered = [PROJECT / d for d in deps if d.startswith("src/")]
    missing = sorted(str(path.relative_to(src)) for path in code
                     if str(path.relative_to(src)) not in deps_tool.EXEMPT
                     and not any(path == c or c in path.parents for c in covered))
    assert not missing, (f"dvc.yaml stage {stage!r} runs these modules but does not list them as deps: {missing}; "
                         "run `python scripts/dvc_code_deps.py --write`")


def test_the_closure_follows_the_cli_helpers_a_handler_calls():
    # cmd_evaluate reaches the classifier code through _evaluate_classifier, and every handler reads params
    # through _params (gliomics.config).
    code = {str(p.relative_to(deps_tool.SRC)) for p in deps_tool.closure(deps_tool.handler_modules("evaluate"))}
    assert {"gliomics/stages/evaluate_classifier.py", "gliomics/config.py", "gliomics/layout.py"} <= code


def test_the_closure_follows_function_level_imports():
    # cli.cmd_analyze imports the analyze stage inside the function; the stage imports the features package.
    code = {str(p.relative_to(deps_tool.SRC)) for p in deps_tool.closure(deps_tool.handler_modules("analyze"))}
    assert "gliomics/stages/analyze.py" in code and "gliomics/features/__init__.py" in code


def test_compact_lists_a_folder_only_when_every_module_in_it_runs():
    src = deps_tool.SRC
    features = {p for p in (src / "gliomics" / "features").rglob("*.py")}
    assert "src/gliomics/features" in deps_tool.compact(features)
    one = {src / "gliomics" / "features" / "texture.py"}
    assert deps_tool.compact(one) == ["src/gliomics/features/texture.py"]
