"""Pruners from params, and the epoch hook that feeds them.

Why a hook and not optuna-integration's ``TFKerasPruningCallback``: that
callback reads the monitored value from Keras' epoch ``logs``, but the
validation per-patient 3D Dice is computed by our own epoch-end callback
(:class:`gliomics.training.callbacks.EpochEnd`) after Keras has filled the
logs, and is handed to ``fit_segmenter``'s ``on_epoch_end(epoch, row)``
hook instead. :class:`EpochReporter` is that hook: it reports ``row[metric]``
at step ``epoch`` and raises :class:`optuna.TrialPruned` when the pruner
says so. The epoch's checkpoint is already written when it runs.

Pruners (``tune.<profile>.pruner``, ``name`` plus the Optuna class's
keyword arguments):

- ``hyperband`` (default): :class:`optuna.pruners.HyperbandPruner`
  (Li et al. 2018), ``max_resource`` defaulting to the trials' epochs;
- ``successive_halving``: :class:`optuna.pruners.SuccessiveHalvingPruner`
  (asynchronous SHA, Li et al. 2020);
- ``median``: :class:`optuna.pruners.MedianPruner`;
- ``none``: :class:`optuna.pruners.NopPruner`.
"""

from __future__ import annotations

import inspect
import math
from typing import Callable

import optuna

from gliomics.errors import GliomicsError

PRUNERS = ("hyperband", "successive_halving", "median", "none")


def make_pruner(spec: dict, max_epochs: int):
    """The Optuna pruner that ``spec`` ({name, **kwargs}) describes; unknown names or
    arguments are a :class:`GliomicsError` naming the allowed ones."""
    spec = dict(spec or {})
    name = spec.pop("name", "hyperband")
    classes = {
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
        "median": optuna.pruners.MedianPruner,
        "none": optuna.pruners.NopPruner,
    }
    if name not in classes:
        raise GliomicsError(f"tune.pruner.name: unknown pruner {name!r}; allowed: {', '.join(PRUNERS)}")
    cls = classes[name]
    allowed = [p for p in inspect.signature(cls).parameters if p != "self"]
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise GliomicsError(f"tune.pruner: unknown argument(s) {', '.join(unknown)} for {name}; "
                            f"allowed: {', '.join(allowed) or 'none'}")
    if name == "hyperband":
        spec.setdefault("max_resource", int(max_epochs))
    try:
        return cls(**spec)
    except (TypeError, ValueError) as exc:
        raise GliomicsError(f"tune.pruner ({name}): {exc}") from None


class EpochReporter:
    """``on_epoch_end(epoch, row)`` hook: report ``row[metric]`` to ``trial``, prune when told.

    ``log(epoch, row)`` (optional) runs first, so a pruned trial's last
    epoch is logged too. :attr:`values` keeps what was reported.
    """

    def __init__(self, trial, metric: str, log: Callable[[int, dict], None] | None = None):
        self.trial = trial
        self.metric = metric
        self.log = log
        self.values: dict[int, float] = {}

    @property
    def best(self) -> float:
        """The best reported value (NaN before any)."""
        finite = [v for v in self.values.values() if not math.isnan(v)]
        return max(finite) if finite else math.nan

    def __call__(self, epoch: int, row: dict) -> None:
        if self.log is not None:
            self.log(epoch, row)
        value = float(row[self.metric])
        self.values[int(epoch)] = value
        if math.isnan(value):
            return  # Optuna refuses NaN intermediate values; the final value decides
        self.trial.report(value, step=int(epoch))
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"{self.metric} {value:.4f} at epoch {epoch}")
