"""Per-epoch training checkpoints, written atomically.

A checkpoint is one folder ``<checkpoint_dir>/last/``::

    weights.npz     model.get_weights() (all weights, batch-norm statistics included)
    optimizer.npz   the optimizer's variables (Adam moments and the step counter)
    best.npz        the weights of the best epoch so far (restored at the end)
    state.json      epoch (completed, 1-based), best score/epoch, history rows,
                    fingerprint of the run's settings

The folder is written through :func:`gliomics.io.atomic_path`: a kill during
the write leaves the previous epoch's checkpoint intact, never a mixture.
Weights are stored as exact float arrays, so a resumed run continues from
bit-identical state.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gliomics.errors import GliomicsError
from gliomics.io import atomic_path

LAST = "last"
STATE_FILE = "state.json"


def _save_arrays(path: Path, arrays) -> None:
    np.savez(path, **{f"a{i:05d}": np.asarray(a) for i, a in enumerate(arrays)})


def _load_arrays(path: Path) -> list[np.ndarray]:
    with np.load(path) as data:
        return [data[k] for k in sorted(data.files)]


def optimizer_variables(optimizer) -> list:
    """The optimizer's variables in a stable order (the step counter first)."""
    variables = list(optimizer.variables)
    iterations = optimizer.iterations
    if not any(v is iterations for v in variables):
        variables.insert(0, iterations)
    return variables


def save_checkpoint(checkpoint_dir: str | Path, model, optimizer, best_weights, state: dict) -> Path:
    """Write the checkpoint of a completed epoch (replaces the previous one atomically)."""
    target = Path(checkpoint_dir) / LAST
    with atomic_path(target) as tmp:
        tmp.mkdir()
        _save_arrays(tmp / "weights.npz", model.get_weights())
        _save_arrays(tmp / "optimizer.npz", [v.numpy() for v in optimizer_variables(optimizer)])
        _save_arrays(tmp / "best.npz", best_weights)
        (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, sort_keys=True, default=_plain) + "\n")
    return target


def read_state(checkpoint_dir: str | Path) -> dict | None:
    """The state of the last checkpoint, or None when there is none."""
    path = Path(checkpoint_dir) / LAST / STATE_FILE
    if not path.exists():
        return None
    return json.loads(path.read_text())


def restore_checkpoint(checkpoint_dir: str | Path, model, optimizer) -> tuple[dict, list[np.ndarray]]:
    """Load weights and optimizer state into ``model``/``optimizer``; return (state, best weights).

    The optimizer must be built (``optimizer.build(model.trainable_variables)``).
    """
    folder = Path(checkpoint_dir) / LAST
    state = json.loads((folder / STATE_FILE).read_text())
    model.set_weights(_load_arrays(folder / "weights.npz"))
    saved = _load_arrays(folder / "optimizer.npz")
    variables = optimizer_variables(optimizer)
    if len(saved) != len(variables):
        raise GliomicsError(f"{folder}: checkpoint has {len(saved)} optimizer variables, the optimizer {len(variables)}")
    for variable, value in zip(variables, saved):
        variable.assign(value)
    return state, _load_arrays(folder / "best.npz")


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
