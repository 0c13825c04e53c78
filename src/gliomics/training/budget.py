"""Training length from a time budget: how many epochs fit into ``budget_minutes`` on this machine.

Images seen per run is the first lever on a segmenter's quality, and the
seconds per training image differ tenfold between CPUs (bf16 on AMX against
fp32 without it). A profile fixed in epochs x steps is therefore a different
budget on every machine; a profile with ``budget_minutes`` is not.

:func:`calibrate` measures, on this machine, the seconds per training step
of the run's own model, precision, batch and data pipeline (after warm-up
steps, which absorb graph tracing and oneDNN's first-call cost) and the
seconds of one validation pass. :func:`epochs_for_budget` turns them into a
number of epochs:

.. math:: E = \\max\\left(1, \\left\\lfloor \\frac{60\\,B - t_{cal}}{S\\,t_{step} + t_{val}} \\right\\rfloor\\right)

with budget :math:`B` minutes, calibration time :math:`t_{cal}`,
``steps_per_epoch`` :math:`S`, seconds per step :math:`t_{step}` and per
validation :math:`t_{val}`. :func:`resolve_length` returns the training
settings with ``epochs = E`` and ``budget_minutes = 0``: exactly the settings
that ``gliomics train --steps E*S`` gives, so a budgeted run is replayed on
any machine by its logged total step count (same settings, same seed, same
learning-rate schedule over the same steps). The choice is written to
``budget.json`` in the checkpoint folder, so ``--resume`` continues the same
run instead of calibrating again.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from gliomics import io
from gliomics.data.pipeline import Augment, train_dataset
from gliomics.errors import GliomicsError
from gliomics.training.fit import build_model, learning_rate, resolve_precision

BUDGET_FILE = "budget.json"
#: Steps run before timing (tracing, first oneDNN calls), then timed.
WARMUP_STEPS = 3
TIMED_STEPS = 12


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` measured on this machine."""

    seconds_per_step: float
    val_seconds: float  # one validation pass over the validation patients
    seconds: float  # the calibration's own wall time

    def seconds_per_image(self, batch_size: int) -> float:
        return self.seconds_per_step / max(1, batch_size)


def epochs_for_budget(budget_minutes: float, steps_per_epoch: int, calibration: Calibration) -> int:
    """The number of whole epochs (each ``steps_per_epoch`` steps and one validation) that fit into the budget
    left after calibration; at least 1."""
    if budget_minutes <= 0:
        raise GliomicsError(f"budget_minutes must be > 0, got {budget_minutes}")
    if calibration.seconds_per_step <= 0 or calibration.val_seconds < 0:
        raise GliomicsError(f"calibration measured no time ({calibration}); cannot size the run")
    per_epoch = steps_per_epoch * calibration.seconds_per_step + calibration.val_seconds
    left = budget_minutes * 60.0 - calibration.seconds
    return max(1, int(math.floor(left / per_epoch)))


def epochs_for_steps(total_steps: int, steps_per_epoch: int, section: str = "train") -> int:
    """``--steps N``: the epochs of a run of ``N`` training steps (``N`` a multiple of ``steps_per_epoch``)."""
    if total_steps < 1:
        raise GliomicsError(f"--steps must be >= 1, got {total_steps}")
    if total_steps % steps_per_epoch:
        raise GliomicsError(f"--steps {total_steps} is not a multiple of {section}.steps_per_epoch "
                            f"({steps_per_epoch}); a run is whole epochs")
    return total_steps // steps_per_epoch


def calibrate(task, store, train_patients, val_patients, params, *, warmup: int = WARMUP_STEPS,
              timed: int = TIMED_STEPS) -> Calibration:
    """Time ``timed`` training steps (after ``warmup``) of ``params``' model on this machine, and one
    validation pass; the model is thrown away (the run builds its own, seeded)."""
    started = time.perf_counter()
    model, _ = build_model(params, store.image_size, resolve_precision(params.precision))
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=learning_rate(params)), loss=task.loss(params),
                  jit_compile=bool(params.xla))
    # Seed far from the run's own batch numbers' use: any batches do for timing.
    data = train_dataset(store, train_patients, batch_size=params.batch_size, tumour_fraction=params.tumour_fraction,
                         augment=Augment.from_params(params.augment), seed=int(params.seed) + 7919,
                         n_batches=warmup + timed).map(task.targets)
    iterator = iter(data)
    for _ in range(warmup):
        model.train_on_batch(*next(iterator))
    step_started = time.perf_counter()
    for _ in range(timed):
        model.train_on_batch(*next(iterator))
    seconds_per_step = (time.perf_counter() - step_started) / timed
    val_started = time.perf_counter()
    task.validate(model, store, list(val_patients), params.batch_size)
    val_seconds = time.perf_counter() - val_started
    del model
    tf.keras.backend.clear_session()
    return Calibration(seconds_per_step=seconds_per_step, val_seconds=val_seconds,
                       seconds=time.perf_counter() - started)


def resolve_length(params, *, steps: int | None = None, checkpoint_dir=None, resume: bool = False,
                   calibrate_run=None, section: str = "train"):
    """``(params, info)``: the settings to train with (``budget_minutes`` resolved into ``epochs``) and a dict
    describing how the length was chosen (``source``: ``epochs``, ``steps`` or ``budget``; ``epochs``,
    ``total_steps``, and for a budget the calibration's numbers), which the stage logs.

    ``steps`` (``--steps``) wins over a budget. A budget calibrates through ``calibrate_run()``
    (returning a :class:`Calibration`) unless ``resume`` finds the earlier choice in
    ``checkpoint_dir/budget.json``.
    """
    budget = float(getattr(params, "budget_minutes", 0.0) or 0.0)
    if budget < 0:
        raise GliomicsError(f"{section}.budget_minutes must be >= 0 (0: use epochs), got {budget}")
    spe = int(params.steps_per_epoch)
    if steps is not None:
        epochs = epochs_for_steps(int(steps), spe, section)
        info = {"source": "steps"}
    elif budget > 0:
        record = Path(checkpoint_dir) / BUDGET_FILE if checkpoint_dir is not None else None
        previous = _read_budget(record) if (resume and record is not None) else None
        if previous is not None and previous.get("budget_minutes") == budget:
            epochs = int(previous["epochs"])
            info = {**previous, "source": "budget", "reused": True}
        else:
            if calibrate_run is None:
                raise GliomicsError(f"{section}.budget_minutes is set but nothing can calibrate this run")
            calibration = calibrate_run()
            epochs = epochs_for_budget(budget, spe, calibration)
            info = {"source": "budget", "budget_minutes": budget, "epochs": epochs,
                    "seconds_per_step": calibration.seconds_per_step,
                    "seconds_per_image": calibration.seconds_per_image(int(params.batch_size)),
                    "val_seconds": calibration.val_seconds, "calibration_seconds": calibration.seconds}
            if record is not None:
                io.write_json(record, info)
    else:
        epochs = int(params.epochs)
        info = {"source": "epochs"}
    info.update(epochs=epochs, total_steps=epochs * spe, steps_per_epoch=spe,
                images=epochs * spe * int(params.batch_size))
    return dataclasses.replace(params, epochs=epochs, budget_minutes=0.0), info


def _read_budget(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def training_length(command: str, task, store, train_patients, val_patients, params, *, steps=None,
                    checkpoint_dir=None, resume: bool = False, announce: bool = True, section: str = "train"):
    """:func:`resolve_length` for a training stage (``command``: ``train`` or ``train-classifier``), calibrating
    ``task``'s model on ``store`` when the settings have a budget; says the choice on stderr (``announce``)."""
    resolved, length = resolve_length(
        params, steps=steps, checkpoint_dir=checkpoint_dir, resume=resume, section=section,
        calibrate_run=lambda: calibrate(task, store, train_patients, val_patients, params))
    if length["source"] == "budget" and announce:
        print(f"{command}: {params.budget_minutes:g} min budget at {length['seconds_per_image']:.3f} s per training "
              f"image here → {length['epochs']} epochs x {resolved.steps_per_epoch} steps (replay: gliomics "
              f"{command} --steps {length['total_steps']})", file=sys.stderr, flush=True)
    return resolved, length
