"""Patient-level splits: an internal test set and k cross-validation folds.

Slices of one patient are strongly correlated; a slice-level split leaks
patients between training and evaluation (the Kota (2024) thesis' split did, and its
accuracy is optimistic for it). Here every split unit is a patient.

Stratification: by histological type and, where every stratum still has at
least as many patients as the split needs, by histology x institution
(TCGA tissue source site; scanners and protocols differ between sites).
Strata too small for that fall back to histology alone, then to one
'rare' stratum.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold, train_test_split

from gliomics.errors import GliomicsError

TEST = "test"


def strata(patients, histology, institution, min_count: int, use_institution: bool = True) -> list[str]:
    """A stratum label per patient, coarsened until each label has ``min_count`` members."""
    hist = ["NA" if h is None or (isinstance(h, float) and np.isnan(h)) else str(int(h)) for h in histology]
    labels = [f"{h}|{i}" for h, i in zip(hist, institution)] if use_institution else list(hist)
    for coarsen in (lambda k: k, lambda k: k.split("|")[0], lambda k: "rare"):
        counts: dict[str, int] = {}
        for label in labels:
            counts[label] = counts.get(label, 0) + 1
        labels = [label if counts[label] >= min_count else coarsen(label) for label in labels]
    return labels


def patient_splits(patients, histology, institution, *, test_fraction: float, n_folds: int, seed: int,
                   use_institution: bool = True):
    """Assign each patient to ``test`` or to one of ``n_folds`` folds.

    Returns a DataFrame ``patient, stratum, part, fold`` (``fold`` is -1 for
    test patients; ``part`` is ``test`` or ``fold<k>``). Deterministic for a
    given seed and patient set (patients are sorted first).
    """
    order = np.argsort(np.asarray(patients, dtype=str), kind="stable")
    patients = [patients[i] for i in order]
    histology = [histology[i] for i in order]
    institution = [institution[i] for i in order]
    n = len(patients)
    if n_folds < 2:
        raise ValueError("n_folds must be at least 2")
    n_test = int(round(test_fraction * n))
    if n - n_test < n_folds:
        raise ValueError(f"{n} patients are too few for a {test_fraction:.0%} test set and {n_folds} folds")

    labels = strata(patients, histology, institution, min_count=2, use_institution=use_institution)
    index = np.arange(n)
    if n_test > 0:
        rest, test = train_test_split(
            index, test_size=n_test, random_state=seed, stratify=_stratify_or_none(labels, n_test)
        )
    else:
        rest, test = index, np.array([], dtype=int)
    fold = np.full(n, -1)
    rest_labels = strata([patients[i] for i in rest], [histology[i] for i in rest],
                         [institution[i] for i in rest], min_count=n_folds, use_institution=use_institution)
    folds = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)

    with warnings.catch_warnings():
        # A 'rare' stratum smaller than n_folds is spread as evenly as possible.
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, held) in enumerate(folds.split(rest, rest_labels)):
            fold[rest[held]] = k
    final_labels = [None] * n
    for i, label in zip(rest, rest_labels):
        final_labels[i] = label
    for i in test:
        final_labels[i] = labels[i]
    return pd.DataFrame(
        {
            "patient": patients,
            "stratum": final_labels,
            "part": [TEST if f < 0 else f"fold{f}" for f in fold],
            "fold": fold,
        }
    )


def _stratify_or_none(labels: list[str], n_test: int):
    """Stratify when sklearn can (each class ≥ 2 and as many classes as test slots)."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    if min(counts.values()) >= 2 and len(counts) <= n_test and len(counts) <= len(labels) - n_test:
        return labels
    coarse = [label.split("|")[0] for label in labels]
    coarse_counts: dict[str, int] = {}
    for label in coarse:
        coarse_counts[label] = coarse_counts.get(label, 0) + 1
    if min(coarse_counts.values()) >= 2 and len(coarse_counts) <= n_test:
        return coarse
    return None


def split_patients(splits_csv, val_fold: int) -> tuple[list[str], list[str]]:
    """(training, validation) patients of a split table; the test part is never included."""
    splits = pd.read_csv(splits_csv)
    missing = {"patient", "part", "fold"} - set(splits.columns)
    if missing:
        raise GliomicsError(f"{splits_csv}: missing column(s) {', '.join(sorted(missing))}")
    cv = splits[splits["part"] != "test"]
    val = sorted(cv.loc[cv["fold"] == val_fold, "patient"].astype(str))
    train = sorted(cv.loc[cv["fold"] != val_fold, "patient"].astype(str))
    if not val:
        folds = sorted(int(f) for f in cv["fold"].unique())
        raise GliomicsError(f"{splits_csv}: no patients in fold {val_fold} (folds: {folds}); set train.val_fold")
    if not train:
        raise GliomicsError(f"{splits_csv}: no training patients outside fold {val_fold}")
    return train, val


def patients_of_part(splits_csv: str | Path, part: str) -> list[str]:
    """The patients of one part (``test``, ``fold0``…) of a ``splits.csv``."""
    path = Path(splits_csv)
    if not path.exists():
        raise GliomicsError(f"{path}: missing; run `gliomics split` first")
    splits = pd.read_csv(path)
    chosen = splits.loc[splits["part"] == part, "patient"].tolist()
    if not chosen:
        raise GliomicsError(f"{path}: no patients in part {part!r} (parts: {', '.join(sorted(splits['part'].unique()))})")
    return chosen
