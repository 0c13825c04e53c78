"""Joining radiomic features to the clinical/genomic table, and the groups.

Shared by :mod:`gliomics.stats.association` and :mod:`gliomics.stats.roc`
so that both analyse exactly the same patients.

Conventions
-----------
* ``features``: one row per patient, a ``patient`` column (TCGA id such as
  ``TCGA_CS_4941``), optionally ``histological_type`` (1 astrocytoma,
  2 oligoastrocytoma, 3 oligodendroglioma; may be NaN) and numeric feature
  columns.
* ``clinical``: the Kaggle ``data.csv`` (``Patient`` column, cluster columns
  with integer codes or NaN).
* The join is a left join on the patient id: every patient with features
  is kept; a patient absent from ``clinical`` simply has missing labels.
  ``histological_type`` is taken from ``features`` when that column exists
  there, else from ``clinical``.
* Group ``all`` pools every patient, including those with a missing
  histological type.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "DEFAULT_FAMILIES",
    "DEFAULT_GROUPS",
    "HISTOLOGY_NAMES",
    "feature_columns_of",
    "group_mask",
    "merge_cohort",
]

#: The seven TCGA molecular cluster families of the Kaggle table (Buda et al.).
DEFAULT_FAMILIES: tuple[str, ...] = (
    "RNASeqCluster",
    "MethylationCluster",
    "miRNACluster",
    "CNCluster",
    "RPPACluster",
    "OncosignCluster",
    "COCCluster",
)

#: Codes of ``histological_type`` in ``data.csv``.
HISTOLOGY_NAMES: dict[int, str] = {1: "astrocytoma", 2: "oligoastrocytoma", 3: "oligodendroglioma"}

#: Group name -> histological code (``None``: all patients pooled).
DEFAULT_GROUPS: dict[str, int | None] = {
    "astrocytoma": 1,
    "oligoastrocytoma": 2,
    "oligodendroglioma": 3,
    "all": None,
}

PATIENT = "patient"
HISTOLOGY = "histological_type"


def feature_columns_of(features: pd.DataFrame, exclude: Sequence[str] = ()) -> list[str]:
    """Numeric columns of ``features`` other than the id and histology."""
    skip = {PATIENT, HISTOLOGY, *exclude}
    return [
        c for c in features.columns if c not in skip and pd.api.types.is_numeric_dtype(features[c])
    ]


def merge_cohort(
    features: pd.DataFrame,
    clinical: pd.DataFrame,
    *,
    families: Sequence[str] = DEFAULT_FAMILIES,
    feature_columns: Sequence[str] | None = None,
    patient_column: str = PATIENT,
    clinical_patient_column: str = "Patient",
) -> tuple[pd.DataFrame, list[str]]:
    """Left-join features to the clinical table on the patient id.

    Returns
    -------
    cohort : DataFrame
        Columns ``patient``, ``histological_type``, the feature columns (as
        float) and the family columns (labels; NaN = missing), one row per
        patient with features.
    feature_columns : list of str
        The feature columns used (all numeric columns of ``features`` when
        not given).

    Raises
    ------
    KeyError
        A requested family or feature column is missing.
    ValueError
        Duplicate patient ids.
    """
    if patient_column not in features.columns:
        raise KeyError(f"features has no {patient_column!r} column")
    if clinical_patient_column not in clinical.columns:
        raise KeyError(f"clinical has no {clinical_patient_column!r} column")
    feats = features.rename(columns={patient_column: PATIENT})
    if feature_columns is None:
        feature_columns = feature_columns_of(feats)
    feature_columns = list(feature_columns)
    missing = [c for c in feature_columns if c not in feats.columns]
    if missing:
        raise KeyError(f"feature columns not in features: {missing}")
    missing = [f for f in families if f not in clinical.columns]
    if missing:
        raise KeyError(f"family columns not in clinical: {missing}")
    for name, frame, col in (("features", feats, PATIENT),
                             ("clinical", clinical, clinical_patient_column)):
        dup = frame[col][frame[col].duplicated()]
        if len(dup):
            raise ValueError(f"duplicate patient ids in {name}: {sorted(map(str, dup.unique()))[:5]}")

    clin_cols = [clinical_patient_column, *families]
    if HISTOLOGY not in feats.columns and HISTOLOGY in clinical.columns:
        clin_cols.append(HISTOLOGY)
    clin = clinical[list(dict.fromkeys(clin_cols))].rename(columns={clinical_patient_column: PATIENT})
    keep = [PATIENT, *([HISTOLOGY] if HISTOLOGY in feats.columns else []), *feature_columns]
    left = feats[keep].copy()
    left[PATIENT] = left[PATIENT].astype(str)
    clin[PATIENT] = clin[PATIENT].astype(str)
    # families shadowing a feature name would be ambiguous
    clash = set(feature_columns) & set(families)
    if clash:
        raise ValueError(f"columns both feature and family: {sorted(clash)}")
    cohort = left.merge(clin, on=PATIENT, how="left", validate="one_to_one")
    if HISTOLOGY not in cohort.columns:
        cohort[HISTOLOGY] = np.nan
    for c in feature_columns:
        cohort[c] = pd.to_numeric(cohort[c], errors="coerce").astype(float)
    cohort[HISTOLOGY] = pd.to_numeric(cohort[HISTOLOGY], errors="coerce")
    return cohort[[PATIENT, HISTOLOGY, *feature_columns, *families]], feature_columns


def group_mask(cohort: pd.DataFrame, code: int | None) -> np.ndarray:
    """Rows of the group: histological code ``code``, or all rows (``None``)."""
    if code is None:
        return np.ones(len(cohort), dtype=bool)
    return (cohort[HISTOLOGY] == code).to_numpy()


def label_levels(values: pd.Series) -> tuple[np.ndarray, np.ndarray, list]:
    """Encode labels: (valid mask, integer codes 0..k-1, sorted level values)."""
    valid = values.notna().to_numpy()
    levels = sorted(pd.unique(values[valid]).tolist())
    lookup = {v: i for i, v in enumerate(levels)}
    codes = np.full(len(values), -1, dtype=np.int64)
    codes[valid] = [lookup[v] for v in values[valid]]
    return valid, codes, levels


def level_value(level):
    """A JSON/CSV friendly level: ints stay ints (2.0 -> 2)."""
    if isinstance(level, (float, np.floating)) and float(level).is_integer():
        return int(level)
    if isinstance(level, np.integer):
        return int(level)
    return level


def stable_seed(*parts) -> list[int]:
    """Entropy for ``numpy.random.SeedSequence`` from strings/ints, stable
    across runs and platforms (CRC32 of each part)."""
    return [zlib.crc32(str(p).encode()) for p in parts]


def iter_groups(groups: Mapping[str, int | None]):
    for name, code in groups.items():
        yield str(name), code
