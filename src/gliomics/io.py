"""Atomic output writing.

Every stage writes through these helpers: the content goes to a temporary
file (or folder) beside the target and is moved into place with
:func:`os.replace`, which is atomic on POSIX. A crash or a failed validation
therefore never leaves a half-written output that looks valid, and a previous
complete output survives until the new one is complete.

The output rule of every command (:func:`check_output`, applied by the CLI):
a missing target is created; an existing folder that a command would replace
whole is replaced only when it is empty, or this command's own earlier output
(it holds the marker file :data:`OUTPUT_MARKER`, written by :func:`mark_output`),
or ``--force`` is given; nothing is written into, above or over an input; and
temporary folders left by a killed run are removed on the next start
(:func:`remove_stale_temps`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from gliomics.errors import GliomicsError

#: File inside a folder output naming the command that wrote it (JSON: ``{"written_by": "gliomics segment"}``).
OUTPUT_MARKER = ".gliomics-output"
#: File inside an :func:`atomic_path` temporary folder: the process that owns it.
_OWNER_FILE = ".owner-pid"


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path; move it onto ``target`` only if the block succeeds.

    Works for files and folders alike: whatever the block creates at the
    yielded path replaces ``target`` (an existing folder is replaced whole).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    (tmp_dir / _OWNER_FILE).write_text(str(os.getpid()))
    tmp = tmp_dir / target.name
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: nothing was written for {target}")
        if target.is_dir() and not target.is_symlink():
            # os.replace cannot replace a non-empty folder: move the old one
            # aside first, so that the swap window is two renames, not a copy.
            old = tmp_dir / (target.name + ".old")
            os.replace(target, old)
            os.replace(tmp, target)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def write_text(target: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``target``."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json(target: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented, key-sorted JSON."""
    return write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def write_csv(target: str | os.PathLike, frame) -> Path:
    """Atomically write a pandas DataFrame as CSV without its index."""
    with atomic_path(target) as tmp:
        frame.to_csv(tmp, index=False)
    return Path(target)


def _json_default(value: Any) -> Any:
    # numpy scalars and paths appear in summaries; make them plain JSON.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# --------------------------------------------------------------------- the output rule
def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temps(target: str | os.PathLike) -> list[Path]:
    """Remove the temporary folders that :func:`atomic_path` left beside ``target`` when its process was killed
    (their owner process is gone); return what was removed."""
    target = Path(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for folder in target.parent.glob(f".{glob.escape(target.name)}.*"):
        owner = folder / _OWNER_FILE
        if not folder.is_dir() or not owner.is_file():
            continue  # not ours
        try:
            pid = int(owner.read_text().strip() or 0)
        except (OSError, ValueError):
            continue
        if pid and not _process_alive(pid):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def written_by(folder: str | os.PathLike) -> str | None:
    """The command recorded in ``folder``'s :data:`OUTPUT_MARKER`, or None."""
    marker = Path(folder) / OUTPUT_MARKER
    try:
        return str(json.loads(marker.read_text(encoding="utf-8")).get("written_by") or "") or None
    except (OSError, ValueError, AttributeError):
        return None


def mark_output(folder: str | os.PathLike, command: str) -> None:
    """Record in ``folder`` that ``command`` wrote it (no timestamp: a DVC-tracked output stays reproducible)."""
    folder = Path(folder)
    if folder.is_dir():
        write_json(folder / OUTPUT_MARKER, {"written_by": command})


def check_output(target: str | os.PathLike, *, command: str, kind: str, data_inputs: Iterable = (),
                 other_inputs: Iterable = (), force: bool = False, replaceable=None) -> None:
    """Refuse, with one :class:`~gliomics.errors.GliomicsError` line, an output that would lose data.

    ``kind``: ``"folder"`` (replaced whole), ``"files"`` (files written into the folder) or ``"file"``.
    ``data_inputs`` (cohorts, patient folders, model folders): the output may not be one of them, lie inside
    one or (a replaced folder) contain one. ``other_inputs`` (tables the command reads): the output may not
    be one of them and a replaced folder may not contain one. An existing folder to be replaced whole must be
    empty, this command's earlier output (:func:`written_by`), accepted by ``replaceable(folder)`` (e.g. "a
    cohort in the Kaggle layout"), or ``force``. Model URIs (``models:/…``) are not paths and are skipped.
    """
    given = Path(target)
    try:
        out = given.resolve()
        data = [Path(p).resolve() for p in data_inputs if p and ":/" not in str(p)]
        others = [Path(p).resolve() for p in other_inputs if p and ":/" not in str(p)]
    except (RuntimeError, OSError) as error:  # a symlink loop
        raise GliomicsError(f"{given}: cannot resolve the path ({error})") from None
    if kind == "folder" and given.is_symlink():
        raise GliomicsError(f"{given}: is a symbolic link; a folder output is replaced whole, so name the real "
                            f"folder ({out}) or another one")
    for source in data + others:
        if out == source:
            raise GliomicsError(f"{given}: is an input of this command; write the output elsewhere")
    for source in data:
        if _inside(out, source):
            raise GliomicsError(f"{given}: lies inside the input {source}; write the output elsewhere")
    if kind == "folder":
        for source in data + others:
            if out in source.parents:
                raise GliomicsError(f"{given}: contains the input {source}, and replacing it would delete that "
                                    "input; write the output elsewhere")
    if kind == "file" and given.is_dir():
        raise GliomicsError(f"{given}: is a folder; name the file to write")
    if kind in ("folder", "files") and given.exists() and not given.is_dir():
        raise GliomicsError(f"{given}: exists and is not a folder")
    if kind == "folder" and given.is_dir() and not force and any(given.iterdir()):
        if written_by(given) != command and not (replaceable is not None and replaceable(given)):
            earlier = written_by(given)
            what = f"the output of `{earlier}`" if earlier else "not an earlier output of this command"
            raise GliomicsError(f"{given}: exists, is not empty and is {what}; replacing it would delete its "
                                "files. Choose another folder, or pass --force to replace it")
    remove_stale_temps(given)
