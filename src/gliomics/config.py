"""``params.yaml`` → typed settings: the one place for defaults.

Each pipeline stage has a frozen dataclass here; its field defaults are the
project's defaults, and ``params.yaml`` overrides them. A key that no
dataclass knows is an error naming the key (typos must not pass silently).
Sections that later stages add are kept, untyped, in :attr:`Params.extra`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gliomics.errors import GliomicsError

PARAMS_FILE = "params.yaml"
PROFILES = ("demo", "cpu", "full")


@dataclass(frozen=True)
class DataParams:
    #: Cohort in the Kaggle ``kaggle_3m`` layout, versioned by ``data.dvc``.
    raw: str = "data/raw"


@dataclass(frozen=True)
class SynthParams:
    #: Seed of the synthetic demo cohort; the cohort is a pure function of it.
    seed: int = 20240601
    #: Number of synthetic patients (the demo keeps it small: minutes, not hours).
    n_patients: int = 16


@dataclass(frozen=True)
class SplitParams:
    #: Seed of the patient-level split.
    seed: int = 42
    #: Share of patients held out as the internal test set (never tuned on).
    test_fraction: float = 0.2
    #: Number of cross-validation folds over the remaining patients.
    n_folds: int = 5
    #: Also stratify by institution (TCGA tissue source site) where counts allow.
    stratify_institution: bool = True


@dataclass(frozen=True)
class Params:
    profile: str = "demo"
    data: DataParams = field(default_factory=DataParams)
    synth: SynthParams = field(default_factory=SynthParams)
    split: SplitParams = field(default_factory=SplitParams)
    #: Sections that no typed dataclass covers yet (added by later stages).
    extra: dict[str, Any] = field(default_factory=dict)


_SECTIONS = {"data": DataParams, "synth": SynthParams, "split": SplitParams}


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read ``path`` (defaults apply when it does not exist) into :class:`Params`."""
    import yaml

    path = Path(path)
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise GliomicsError(f"{path}: not valid YAML ({_first_line(exc)})") from None
        if not isinstance(raw, dict):
            raise GliomicsError(f"{path}: expected a mapping of sections at the top level")
    return params_from_dict(raw, source=str(path))


def params_from_dict(raw: dict[str, Any], source: str = PARAMS_FILE) -> Params:
    """Build :class:`Params` from a plain mapping, checking keys and types."""
    raw = dict(raw)
    profile = raw.pop("profile", Params.profile)
    if profile not in PROFILES:
        raise GliomicsError(f"{source}: profile must be one of {', '.join(PROFILES)}, got {profile!r}")
    sections = {}
    for name, cls in _SECTIONS.items():
        values = raw.pop(name, None) or {}
        if not isinstance(values, dict):
            raise GliomicsError(f"{source}: section '{name}' must be a mapping")
        sections[name] = _build(cls, values, f"{source}: {name}")
    return Params(profile=profile, extra=raw, **sections)


def _build(cls, values: dict[str, Any], where: str):
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise GliomicsError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(known)}")
    kwargs = {}
    for key, value in values.items():
        default = getattr(cls, key)
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise GliomicsError(f"{where}.{key}: expected {expected.__name__}, got {value!r}")
        kwargs[key] = value
    return cls(**kwargs)


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
