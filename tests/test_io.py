import json

import pytest

from gliomics import io


def test_failed_write_keeps_previous_file(tmp_path):
    target = tmp_path / "out.json"
    io.write_json(target, {"version": 1})
    with pytest.raises(RuntimeError):
        with io.atomic_path(target) as tmp:
            tmp.write_text('{"version": 2, "trunc')
            raise RuntimeError("crash mid-write")
    assert json.loads(target.read_text()) == {"version": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"], "no temporary files left behind"


def test_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "docs"
    target.mkdir()
    (target / "old.html").write_text("old")
    with io.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.html").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.html"]


def test_nothing_written_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        with io.atomic_path(tmp_path / "x.csv"):
            pass
    assert not (tmp_path / "x.csv").exists()
