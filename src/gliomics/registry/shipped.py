"""Which segmenter a command uses by default: a registered champion trained on real data, else the shipped one.

The project ships a segmenter trained on the real TCGA-LGG cohort
(``models/pretrained/lgg-segmenter``, an MLflow model folder with its model
card), so a fresh clone can analyse a real patient. After ``make demo`` the
registry's ``@champion`` is a toy trained on the synthetic demo cohort
(profile ``demo``); such a champion must never be used silently on a real
patient. :func:`choose_segmenter` decides, and says why:

1. ``--model`` given: that model, whatever it is (the user chose);
2. else the ``gliomics-segmenter@champion`` when its version was not trained
   on the synthetic cohort (version tag ``profile`` other than ``demo``);
3. else the shipped model;
4. else an error that names what is missing and how to get a model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gliomics import layout
from gliomics.errors import GliomicsError
from gliomics.registry import CHAMPION, SEGMENTER, champion_uri

#: The segmenter committed with the project (relative to the project root).
SHIPPED_SEGMENTER = layout.SHIPPED_SEGMENTER
#: Training profiles whose models were trained on the synthetic demo cohort.
SYNTHETIC_PROFILES = frozenset({"demo"})


@dataclass(frozen=True)
class ModelChoice:
    """The model a command will load (``uri``: one URI, or a list for an ensemble) and why, in words."""

    uri: str | list
    reason: str


def trained_on_synthetic(version: dict) -> bool:
    """Whether a registered version (a :func:`gliomics.registry.listing.version_info` dict) was trained on the
    synthetic demo cohort, as its ``profile`` tag says."""
    return str((version.get("tags") or {}).get("profile", "")) in SYNTHETIC_PROFILES


def locate(path: str | Path) -> Path:
    """``path`` as given when it exists from here, else relative to the project checkout this package runs
    from (so the shipped model is found from any working directory)."""
    path = Path(path)
    if path.exists() or path.is_absolute():
        return path
    project = Path(__file__).resolve().parents[3]  # src/gliomics/registry/shipped.py -> the checkout
    return project / path if (project / path).exists() else path


def _champion() -> dict | None:
    # Here, not at the top: with --model, analyze never asks the registry and never pays for importing MLflow.
    from gliomics.registry.listing import get_alias

    try:
        return get_alias(SEGMENTER, CHAMPION)
    except Exception:  # noqa: BLE001 - no reachable registry is the same as no champion here
        return None


def choose_segmenter(requested=None, *, shipped: str | Path | None = None, champion=_champion) -> ModelChoice:
    """The segmenter to use when ``requested`` (``--model``) may be None; see the module docstring.

    ``shipped`` defaults to :data:`SHIPPED_SEGMENTER`; ``champion()`` returns the champion's version dict or
    None (both injectable for tests).
    """
    if requested:
        return ModelChoice(requested, "given with --model")
    holder = champion()
    if holder is not None and not trained_on_synthetic(holder):
        profile = (holder.get("tags") or {}).get("profile") or "?"
        return ModelChoice(champion_uri(), f"the registry's champion ({SEGMENTER} version {holder['version']}, "
                                         f"profile {profile})")
    shipped = locate(SHIPPED_SEGMENTER if shipped is None else shipped)
    if (shipped / "MLmodel").is_file():
        why = ("the registry's champion (version {}) was trained on the synthetic demo cohort".format(holder["version"])
               if holder is not None else "no champion is registered")
        return ModelChoice(str(shipped), f"the shipped segmenter trained on the real TCGA-LGG cohort ({why})")
    if holder is not None:
        raise GliomicsError(f"the registry's champion ({SEGMENTER} version {holder['version']}) was trained on "
                            f"the synthetic demo cohort and the shipped segmenter {shipped} is missing; pass "
                            "--model explicitly (a champion trained on real data is used when there is one)")
    raise GliomicsError(f"no segmenter: no {SEGMENTER} champion is registered and the shipped segmenter "
                        f"{shipped} is missing (restore it with `git checkout -- {shipped}`, or pass --model)")
