"""``gliomics validate``: check a cohort and write its slice manifest (DVC stage ``validate``); the checks and
the outputs: :mod:`gliomics.validation.cohort`."""

from __future__ import annotations

from pathlib import Path

from gliomics import layout
from gliomics.validation.cohort import validate_cohort


def run_validate(data_dir: str | Path, out_dir: str | Path = layout.VALIDATE, **options) -> dict:
    """Validate the cohort at ``data_dir`` into ``out_dir`` (:func:`gliomics.validation.cohort.validate_cohort`,
    whose keyword options it takes)."""
    return validate_cohort(data_dir, out_dir, **options)
