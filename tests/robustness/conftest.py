"""Shared by the robustness tests: a scratch project, a checksum of its tree, and the refusal check."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from gliomics.cli import main


def tree(root: Path) -> dict[str, str]:
    """``relative path -> md5`` of every file under ``root``."""
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def project(small_cohort, tmp_path, monkeypatch) -> Path:
    """A scratch project (cwd): params.yaml, data/raw = the small cohort, a validated manifest."""
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text("profile: demo\n")
    (root / "dvc.yaml").write_text("stages: {}\n")
    shutil.copytree(small_cohort, root / "data" / "raw")
    monkeypatch.chdir(root)
    assert main(["validate", "--no-mlflow"]) == 0
    return root


def one_error_line(capsys, command: str) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith(f"gliomics {command}: error:"), err[0]
    return err[0]


def refused(project, capsys, argv, message, *, code=2, own=()):
    """Run ``argv``: exit ``code``, one line containing ``message``, no file changed outside ``own``."""
    before = tree(project)
    assert main(argv) == code
    line = one_error_line(capsys, argv[0])
    assert message in line, line
    after = tree(project)
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert {k for k in changed if not any(k.startswith(o) for o in own)} == set(), changed
    return line
