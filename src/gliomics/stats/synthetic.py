"""A simulated features + clinical cohort with a known association.

Used by the tests and the benchmark (and usable by a demo): the shapes
match what :func:`gliomics.stats.association.association_tests` expects
(``features`` with ``patient``, ``histological_type`` and numeric columns;
``clinical`` shaped like the Kaggle ``data.csv``).

The built-in signal: feature ``signal`` is shifted by ``effect`` standard
deviations in level ``signal_level`` of ``signal_family`` (in every
histological group); every other feature is independent noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .cohort import DEFAULT_FAMILIES

__all__ = ["FAMILY_LEVELS", "simulate_cohort"]

#: Number of levels of each family in the Kaggle table.
FAMILY_LEVELS: dict[str, int] = {
    "RNASeqCluster": 4,
    "MethylationCluster": 5,
    "miRNACluster": 4,
    "CNCluster": 3,
    "RPPACluster": 4,
    "OncosignCluster": 3,
    "COCCluster": 3,
}


def simulate_cohort(
    n_patients: int = 110,
    n_noise_features: int = 13,
    *,
    seed: int = 0,
    signal_family: str = "RNASeqCluster",
    signal_level: int = 2,
    effect: float = 3.0,
    missing_rate: float = 0.1,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Simulate (features, clinical).

    Parameters
    ----------
    n_patients : int
    n_noise_features : int
        Pure-noise features ``noise_00`` ... besides ``signal``.
    seed : int
    signal_family, signal_level : str, int
        Where ``signal`` differs (level codes are 1..k).
    effect : float
        Mean shift of ``signal`` in that level (in SDs).
    missing_rate : float
        Share of missing labels per family (not in ``signal_family``).

    Returns
    -------
    features, clinical : DataFrame
    """
    rng = np.random.default_rng(seed)
    patients = [f"TCGA_SIM_{i:04d}" for i in range(n_patients)]
    histology = rng.choice([1, 2, 3], size=n_patients, p=[0.3, 0.27, 0.43]).astype(float)
    clinical = {"Patient": patients}
    for fam in DEFAULT_FAMILIES:
        lab = rng.integers(1, FAMILY_LEVELS[fam] + 1, size=n_patients).astype(float)
        if fam != signal_family and missing_rate > 0:
            lab[rng.random(n_patients) < missing_rate] = np.nan
        clinical[fam] = lab
    clinical["histological_type"] = histology
    clinical["neoplasm_histologic_grade"] = rng.integers(1, 3, size=n_patients).astype(float)
    clinical["death01"] = (rng.random(n_patients) < 0.25).astype(float)
    clinical = pd.DataFrame(clinical)
    feats = {"patient": patients, "histological_type": histology}
    feats["signal"] = rng.normal(size=n_patients) + effect * (
        clinical[signal_family].to_numpy() == signal_level
    )
    for i in range(n_noise_features):
        feats[f"noise_{i:02d}"] = rng.normal(size=n_patients)
    return pd.DataFrame(feats), clinical
