"""The project code each DVC stage runs, from the import graph; `--write` puts it into dvc.yaml's deps.

    python scripts/dvc_code_deps.py            # print, per stage, the src/ paths it should list
    python scripts/dvc_code_deps.py --write    # replace each stage's src/ deps in dvc.yaml (comments kept)

The code a stage runs: the ``gliomics`` subcommand in its ``cmd``, that command's handler in cli.py, and every
gliomics module the handler imports, directly or through other modules (imports inside functions included).
A folder is listed when the stage runs every module in it (sub-folders included), else the files. cli.py and
the package's ``__init__.py`` (environment set-up) are left out: every stage runs through them.
``tests/test_dvc_deps.py`` fails when dvc.yaml misses a module.
"""

from __future__ import annotations

import argparse
import ast
import inspect
import re
import sys
import textwrap
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[1]
SRC = PROJECT / "src"
EXEMPT = {"gliomics/cli.py", "gliomics/__init__.py"}


def module_file(name: str) -> Path | None:
    """The source file of the gliomics module ``name`` (a package's ``__init__.py``), or None."""
    base = SRC / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(tree: ast.AST, package: str) -> set[str]:
    """gliomics modules imported anywhere in ``tree`` (``package``: the importing module's package)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("gliomics")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            if not base.startswith("gliomics"):
                continue
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}")}
    return {name for name in found if module_file(name)}


def closure(start: set[str]) -> set[Path]:
    """Source files of ``start`` and of everything they import, transitively (parent packages included)."""
    seen: set[str] = set()
    todo = list(start)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parts = name.split(".")
        todo += [".".join(parts[:i]) for i in range(2, len(parts))]  # importing a.b.c runs a.b's __init__
        path = module_file(name)
        if path is None:  # a folder without __init__.py (a namespace package): nothing runs
            continue
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        todo += sorted(imported_modules(ast.parse(path.read_text()), package))
    return {module_file(name) for name in seen} - {None}


def handler_modules(subcommand: str) -> set[str]:
    """The gliomics modules imported by the cli handler of ``subcommand`` and by the cli.py functions it calls
    (``_params``, ``_evaluate_classifier``, ..., followed recursively), plus the modules cli.py imports at its
    top (``layout``, ``errors``) that those functions use."""
    import gliomics.cli as cli

    parser = cli.build_parser()
    choices = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001
    handler = choices[subcommand].get_default("func")
    cli_functions = {name: obj for name, obj in vars(cli).items()
                     if inspect.isfunction(obj) and obj.__module__ == cli.__name__}
    top_level = imported_modules(ast.Module(body=[n for n in ast.parse(inspect.getsource(cli)).body
                                                  if isinstance(n, (ast.Import, ast.ImportFrom))],
                                            type_ignores=[]), "gliomics")
    modules, seen, todo = set(), set(), [handler.__name__]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse(textwrap.dedent(inspect.getsource(cli_functions[name])))
        modules |= imported_modules(tree, "gliomics")
        used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
        todo += sorted(used & set(cli_functions))
        modules |= {m for m in top_level if m.rpartition(".")[2] in used}
    return modules


def stages():
    dvc = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    params = yaml.safe_load((PROJECT / "params.yaml").read_text())
    for name, stage in dvc["stages"].items():
        command = re.search(r"gliomics\s+([a-z-]+)", stage["cmd"]).group(1)
        deps = [re.sub(r"\$\{data\.raw\}", params["data"]["raw"], str(d)) for d in stage.get("deps", [])]
        yield name, command, deps




def compact(files: set[Path]) -> list[str]:
    """``files`` as the fewest project-relative paths: a folder when all its .py files (recursively) are in."""
    files = {f for f in files if str(f.relative_to(SRC)) not in EXEMPT}

    def whole(folder: Path) -> bool:
        return all(p in files for p in folder.rglob("*.py") if "__pycache__" not in p.parts)

    chosen: set[Path] = set()
    for f in sorted(files):
        top = None
        for folder in reversed(f.relative_to(SRC).parents):
            folder = SRC / folder
            if folder == SRC or folder == SRC / "gliomics":
                continue
            if whole(folder):
                top = folder
                break
        chosen.add(top or f)
    return sorted(str(p.relative_to(PROJECT)) for p in chosen)


def write(dvc_file: Path) -> None:
    """Replace the ``- src/...`` dep lines of every stage in ``dvc_file`` by :func:`compact` of its closure."""
    lines = dvc_file.read_text().splitlines(keepends=True)
    code = {name: compact(closure(handler_modules(command))) for name, command, _ in stages()}
    out, stage, in_deps = [], None, False
    for line in lines:
        header = re.match(r"^  ([a-z_]+):\s*$", line)
        if header:
            stage, in_deps = header.group(1), False
        if stage in code and re.match(r"^    deps:\s*$", line):
            in_deps = True
            out.append(line)
            continue
        if in_deps and re.match(r"^      - src/", line):
            continue  # replaced below
        if in_deps and not re.match(r"^      - ", line):
            out += [f"      - {path}\n" for path in code[stage]]
            in_deps = False
        out.append(line)
    dvc_file.write_text("".join(out))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's src/ deps")
    args = parser.parse_args()
    sys.path.insert(0, str(SRC))
    if args.write:
        write(PROJECT / "dvc.yaml")
    for name, command, _ in stages():
        print(f"{name} ({command}): {', '.join(compact(closure(handler_modules(command))))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
