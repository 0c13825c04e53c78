"""A labelled cohort's patients and their slices, read through the one slice reader (:mod:`gliomics.data.slices`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gliomics.data import slices as slice_reader
from gliomics.data.kaggle import resolve_cohort_dir, slices_by_folder
from gliomics.errors import GliomicsError


def cohort_patients(data_dir, *, need_masks: bool, patients=None):
    """``(root, {folder: [SliceFiles, ...]})`` of the cohort at ``data_dir``.

    Raises :class:`GliomicsError` for a folder without slices, a slice
    without its image, a missing mask when ``need_masks`` (naming the
    folder), or requested ``patients`` (ids or folder names) not present.
    """
    root = resolve_cohort_dir(data_dir)
    by_folder = slices_by_folder(root)
    if patients is not None:
        wanted = {str(p) for p in patients}
        found = {f for f, ss in by_folder.items() if f in wanted or ss[0].patient in wanted}
        known = {f for f in by_folder} | {ss[0].patient for ss in by_folder.values()}
        missing = sorted(wanted - known)
        if missing:
            raise GliomicsError(f"{root}: requested patients not found: {', '.join(missing[:20])}")
        by_folder = {f: by_folder[f] for f in sorted(found)}
        if not by_folder:
            raise GliomicsError(f"{root}: the requested patient list is empty")
    for folder, folder_slices in by_folder.items():
        no_image = [s for s in folder_slices if s.image is None]
        if no_image:
            raise GliomicsError(f"{root / folder}: slice {no_image[0].slice} has a mask but no image")
        if need_masks:
            no_mask = [s for s in folder_slices if s.mask is None]
            if no_mask:
                what = ("no masks at all" if len(no_mask) == len(folder_slices)
                        else f"{len(no_mask)} slice(s) without a mask, e.g. {no_mask[0].image.name}")
                raise GliomicsError(f"{root / folder}: {what}; evaluate needs the true masks "
                                    f"(<folder>_<n>_mask.tif); use `gliomics segment` on unlabelled data")
    return root, by_folder


def read_images(folder_slices, root: Path | None = None) -> np.ndarray:
    """One patient's images stacked ``(n, 256, 256, 3)`` uint8, each checked by
    :func:`gliomics.data.slices.read_image` (one line naming the first slice that is not 256x256x3 uint8)."""
    return slice_reader.read_images(s.image for s in folder_slices)


def read_masks(folder_slices, shape: tuple[int, int] | None = None, root: Path | None = None) -> np.ndarray:
    """One patient's true masks stacked ``(n, 256, 256)`` as booleans, each checked by
    :func:`gliomics.data.slices.read_mask` (256x256 uint8, values 0/255 only, as ``gliomics validate``
    expects). ``shape`` and ``root`` are kept for callers; every slice is 256x256."""
    return slice_reader.read_masks(s.mask for s in folder_slices)
