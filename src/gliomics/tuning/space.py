"""The search space: ``tune.<profile>.space`` -> Optuna suggestions -> training settings.

:func:`sample` asks an Optuna trial for one value per searched key (keys
with one choice are fixed, not suggested) and returns every value, searched
or fixed. The space is conditional, as the model builders require:

- ``backbone`` is suggested only for the segmentation-models archs (Unet,
  FPN, Linknet); ``plain_unet`` has none;
- ``pooling`` is suggested only where the model has a pooling layer to swap
  (plain_unet, and resnet/resnext backbones,
  :func:`gliomics.models.options.backbone_has_pooling`); elsewhere it is
  ``max``, which means "unchanged" for those builders.

Distributions: categorical for ``arch``, ``backbone``, ``activation``,
``pooling``, ``loss`` and ``batch_size``; log-uniform ``[low, high]`` for
``learning_rate``; uniform ``[low, high]`` for ``augment_strength``.

:func:`apply_values` turns the values into a :class:`~gliomics.config.TrainParams`
with :func:`dataclasses.replace` on a base (the profile's training settings):
``model`` becomes ``{arch, backbone?, activation, pooling}`` plus the fixed
builder arguments of that arch (``tune.model_options[arch]``, else the base
model's own when it has the same arch), and ``augment`` is
:func:`scale_augment` of the base augmentation by ``augment_strength``.
:func:`low_fidelity` shrinks settings for the cheap search trials.

Grid search (``tune.<profile>.sampler: grid``): :func:`grid_search_space`
gives Optuna's :class:`~optuna.samplers.GridSampler` exactly the keys that
:func:`sample` suggests, and refuses spaces a grid cannot cover (a range
that is not fixed to one value, or a key suggested for some configurations
only).

Nothing here imports TensorFlow.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

from gliomics.config import LowFidelityParams, TuneSpaceParams
from gliomics.data.pipeline import Augment
from gliomics.errors import GliomicsError
from gliomics.models.options import ACTIVATIONS, BACKBONES, PLAIN_UNET, POOLINGS, backbone_has_pooling, canonical_arch
from gliomics.training.losses import loss_names

#: Space keys with a list of choices (the others are numeric ranges).
CATEGORICAL = ("arch", "backbone", "activation", "pooling", "loss", "batch_size")
#: Space keys that are ``[low, high]`` ranges: log-uniform or uniform.
LOG_RANGES = ("learning_rate",)
RANGES = ("augment_strength",)
#: Model keys the search sets (so a base or model_options value for them is overridden).
SEARCHED_MODEL_KEYS = ("arch", "backbone", "activation", "pooling")
#: Augment fields scaled by ``augment_strength``: probabilities (clipped to 1) and limits.
AUGMENT_PROBABILITIES = ("hflip", "vflip", "affine", "brightness_contrast", "distortion_p")
AUGMENT_LIMITS = ("shift", "scale", "rotate", "brightness", "contrast", "grid_limit", "elastic_alpha")


def check_space(space: TuneSpaceParams, model_options: dict, losses=None) -> None:
    """Raise :class:`GliomicsError` naming ``tune.space.<key>`` for any value the builders would refuse.

    ``losses``: the allowed loss names (default: :func:`gliomics.training.losses.loss_names`).
    """
    where = "tune.space"
    for key in CATEGORICAL + LOG_RANGES + RANGES:
        values = getattr(space, key)
        if not values:
            raise GliomicsError(f"{where}.{key}: needs at least one value")
        if len(set(map(repr, values))) != len(values):
            raise GliomicsError(f"{where}.{key}: duplicate values in {values!r}")
    archs = [_canonical(a, f"{where}.arch") for a in space.arch]
    _allowed(space.backbone, BACKBONES, f"{where}.backbone")
    _allowed(space.activation, ACTIVATIONS, f"{where}.activation")
    _allowed(space.pooling, POOLINGS, f"{where}.pooling")
    if losses is None:
        losses = loss_names()
    _allowed(space.loss, losses, f"{where}.loss")
    for size in space.batch_size:
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise GliomicsError(f"{where}.batch_size: expected positive integers, got {size!r}")
    for key in LOG_RANGES + RANGES:
        low, high = _range(getattr(space, key), f"{where}.{key}")
        if key in LOG_RANGES and low <= 0:
            raise GliomicsError(f"{where}.{key}: log-uniform range needs low > 0, got {low!r}")
        if key in RANGES and low < 0:
            raise GliomicsError(f"{where}.{key}: range needs low >= 0, got {low!r}")
    if "avg" in space.pooling and PLAIN_UNET not in archs and not any(
            backbone_has_pooling(b) for b in space.backbone):
        raise GliomicsError(f"{where}.pooling: 'avg' has nothing to act on: no arch/backbone in the space has a "
                            "pooling layer (plain_unet, resnet*, resnext*)")
    if not isinstance(model_options, dict):
        raise GliomicsError(f"tune.model_options: expected a mapping arch -> builder arguments, got {model_options!r}")
    for arch, options in model_options.items():
        _canonical(arch, "tune.model_options")
        if not isinstance(options, dict):
            raise GliomicsError(f"tune.model_options.{arch}: expected a mapping of builder arguments")
        fixed = sorted(set(options) & set(SEARCHED_MODEL_KEYS))
        if fixed:
            raise GliomicsError(f"tune.model_options.{arch}: {', '.join(fixed)} is searched (set it in tune.space)")


def _canonical(arch, where: str) -> str:
    try:
        return canonical_arch(arch)
    except GliomicsError as exc:
        raise GliomicsError(f"{where}: {exc}") from None


def _allowed(values, allowed, where: str) -> None:
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise GliomicsError(f"{where}: unknown {', '.join(map(repr, unknown))}; allowed: {', '.join(allowed)}")


def _range(values, where: str) -> tuple[float, float]:
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values) or len(values) > 2:
        raise GliomicsError(f"{where}: expected [low, high] or [value], got {values!r}")
    low, high = float(values[0]), float(values[-1])
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise GliomicsError(f"{where}: expected low <= high, got {values!r}")
    return low, high


def _categorical(trial, name: str, choices: list) -> Any:
    return choices[0] if len(choices) == 1 else trial.suggest_categorical(name, list(choices))


def sample(trial, space: TuneSpaceParams) -> dict:
    """One configuration: ``{key: value}`` for every space key that applies.

    Keys with a single choice (or ``[value]`` ranges) are fixed and not
    suggested, so they never appear in ``trial.params``; ``backbone`` is
    absent for plain_unet.
    """
    values: dict[str, Any] = {}
    arch = canonical_arch(_categorical(trial, "arch", [canonical_arch(a) for a in space.arch]))
    values["arch"] = arch
    if arch != PLAIN_UNET:
        values["backbone"] = _categorical(trial, "backbone", space.backbone)
    has_pooling = arch == PLAIN_UNET or backbone_has_pooling(values["backbone"])
    values["activation"] = _categorical(trial, "activation", space.activation)
    values["pooling"] = _categorical(trial, "pooling", space.pooling) if has_pooling else "max"
    values["loss"] = _categorical(trial, "loss", space.loss)
    values["batch_size"] = int(_categorical(trial, "batch_size", space.batch_size))
    for key in LOG_RANGES + RANGES:
        low, high = _range(getattr(space, key), f"tune.space.{key}")
        if low == high:
            values[key] = low
        else:
            values[key] = trial.suggest_float(key, low, high, log=key in LOG_RANGES)
    return values


def scale_augment(augment: dict, strength: float) -> dict:
    """``augment`` (fields of :class:`gliomics.data.pipeline.Augment`) with every probability
    multiplied by ``strength`` (capped at 1) and every limit multiplied by ``strength``.

    0 turns augmentation off; 1 leaves it as configured; unset fields start from
    the :class:`~gliomics.data.pipeline.Augment` defaults.
    """
    base = Augment.from_params(augment or {})
    if base is None:  # augmentation switched off: nothing to scale
        return augment
    strength = float(strength)
    scaled = {name: min(1.0, getattr(base, name) * strength) for name in AUGMENT_PROBABILITIES}
    scaled.update({name: getattr(base, name) * strength for name in AUGMENT_LIMITS})
    return {**base.as_dict(), **scaled}


def apply_values(base, values: dict, model_options: dict | None = None):
    """``base`` (a TrainParams-like dataclass) with the sampled ``values`` applied."""
    arch = values["arch"]
    base_model = dict(base.model)
    options = {}
    if base_model.get("arch") and canonical_arch(base_model["arch"]) == arch:
        options = {k: v for k, v in base_model.items() if k not in SEARCHED_MODEL_KEYS and k != "input_shape"}
    for key, extra in (model_options or {}).items():
        if canonical_arch(key) == arch:
            options.update(extra)
    model = {"arch": arch, **({"backbone": values["backbone"]} if "backbone" in values else {}),
             "activation": values["activation"], "pooling": values["pooling"], **options}
    return dataclasses.replace(
        base, model=model, loss=values["loss"], learning_rate=float(values["learning_rate"]),
        batch_size=int(values["batch_size"]), augment=scale_augment(base.augment, values["augment_strength"]))


def low_fidelity(settings, low: LowFidelityParams):
    """``settings`` shrunk for a search trial: image size, epochs and steps from ``low``."""
    return dataclasses.replace(settings, image_size=int(low.image_size), epochs=int(low.epochs),
                               steps_per_epoch=int(low.steps_per_epoch))


def check_low_fidelity(low: LowFidelityParams, where: str = "tune.low_fidelity") -> None:
    for key in ("image_size", "epochs", "steps_per_epoch"):
        if getattr(low, key) < 1:
            raise GliomicsError(f"{where}.{key}: must be >= 1, got {getattr(low, key)}")
    if not 0 < low.train_patient_fraction <= 1:
        raise GliomicsError(f"{where}.train_patient_fraction: must be in (0, 1], got {low.train_patient_fraction}")


class _RecordingTrial:
    """Stands in for an Optuna trial: answers ``suggest_categorical`` from ``choice`` (else the
    first choice) and records which names were suggested; a float suggestion is a range."""

    def __init__(self, choice: dict):
        self.choice = choice
        self.suggested: list[str] = []
        self.ranges: list[str] = []

    def suggest_categorical(self, name, choices):
        self.suggested.append(name)
        return self.choice.get(name, choices[0])

    def suggest_float(self, name, low, high, log=False):
        self.ranges.append(name)
        return low


def grid_search_space(space: TuneSpaceParams, where: str = "tune.sampler") -> dict[str, list]:
    """``{name: choices}`` of every key :func:`sample` suggests, for :class:`optuna.samplers.GridSampler`.

    The grid must be unconditional: every configuration suggests the same
    keys (so a mix of plain_unet with segmentation-models archs and several
    backbones is refused: ``backbone`` is suggested for some archs only), and
    every range (``learning_rate``, ``augment_strength``) is fixed to one
    value. Otherwise a :class:`GliomicsError` names ``where`` and the key.
    Found by running :func:`sample` over every combination of the
    categorical choices, so it follows sample()'s rules by construction.
    """
    for key in LOG_RANGES + RANGES:
        low, high = _range(getattr(space, key), f"{where}: space.{key}")
        if low != high:
            raise GliomicsError(f"{where}: grid needs space.{key} fixed to one value, got {getattr(space, key)!r} "
                                "(a range is for tpe)")
    choices = {key: ([canonical_arch(a) for a in space.arch] if key == "arch" else list(getattr(space, key)))
               for key in CATEGORICAL}
    choices = {key: values for key, values in choices.items() if len(values) > 1}
    suggested_sets = set()
    for combination in itertools.product(*choices.values()):
        trial = _RecordingTrial(dict(zip(choices, combination)))
        sample(trial, space)
        suggested_sets.add(tuple(sorted(trial.suggested)))
    if len(suggested_sets) > 1:
        always = set.intersection(*map(set, suggested_sets))
        conditional = sorted(set.union(*map(set, suggested_sets)) - always)
        raise GliomicsError(f"{where}: grid needs an unconditional space, but space.{conditional[0]} is searched "
                            "for some configurations only (e.g. plain_unet has no backbone; mobilenet/efficientnet "
                            "backbones no pooling): give it one value or narrow space.arch/backbone")
    names = next(iter(suggested_sets)) if suggested_sets else ()
    return {name: choices[name] for name in names}


def grid_size(search_space: dict) -> int:
    """Number of configurations in a grid ``{name: choices}`` (1 for an empty grid)."""
    return math.prod(len(values) for values in search_space.values())
