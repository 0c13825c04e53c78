"""The array store a training run reads: its split's patients, built or reused, checked to hold them."""

from __future__ import annotations

from gliomics.data.arrays import build_array_store, open_array_store
from gliomics.data.splits import split_patients
from gliomics.errors import GliomicsError
from gliomics.models.preprocessing import Preprocessing
from gliomics.progress import progress


def store_prefilter(params) -> str | None:
    """The array store's prefilter of training settings: ``None`` for none (``prefilter: none`` or unset)."""
    return None if params.prefilter in (None, "none") else params.prefilter


def check_store_patients(store, patients, splits_csv) -> None:
    """A one-line error naming ``splits_csv`` when some of ``patients`` are not in the array store."""
    unknown = sorted(set(patients) - set(store.patients))
    if unknown:
        raise GliomicsError(f"{splits_csv}: patients not in the cohort/manifest: {', '.join(unknown[:10])}")


def open_training_store(data_dir, manifest_csv, splits_csv, store_dir, params):
    """The split's training and validation patients (fold ``params.val_fold`` validates) and the array store of
    ``params`` (built, or reused when current), checked to hold them all.

    Returns (store, train_patients, val_patients, preprocessing); used by the segmenter and classifier stages.
    """
    train_patients, val_patients = split_patients(splits_csv, params.val_fold)
    with progress("array store", 0) as update:
        build_array_store(data_dir, store_dir, image_size=params.image_size, prefilter=store_prefilter(params),
                          manifest=manifest_csv, progress=update)
    store = open_array_store(store_dir)
    check_store_patients(store, train_patients + val_patients, splits_csv)
    preprocessing = Preprocessing.from_store_settings(store.settings)
    return store, train_patients, val_patients, preprocessing
