"""The per-slice manifest: one row per slice, built by reading every file.

The manifest records what each file actually holds (shape, dtype, mask
values, tumour area, or why it could not be read). Validation then checks
the manifest with expectations; later stages read slices through it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from gliomics.data.kaggle import SliceFiles, institution_of, read_tif
from gliomics.data.slices import MASK_VALUES, shape_text, values_text
from gliomics.errors import GliomicsError

MANIFEST_COLUMNS = (
    "patient",
    "folder",
    "institution",
    "slice",
    "n_slices",
    "image_path",
    "mask_path",
    "has_image",
    "has_mask",
    "image_shape",
    "image_dtype",
    "mask_shape",
    "mask_dtype",
    "mask_values",
    "mask_binary",
    "tumour_pixels",
    "pre_is_flair",
    "post_is_flair",
    "read_error",
)

#: Channel order of a slice: pre-contrast, FLAIR, post-contrast.
PRE, FLAIR, POST = 0, 1, 2
#: A patient lacks a sequence when that channel is a copy of FLAIR on at least this share of its slices
#: (the dataset's own filling of a missing sequence; an empty slice is trivially identical on every channel).
MISSING_SHARE = 0.5
SEQUENCE_GROUPS = ("all sequences", "no post-contrast", "no pre-contrast", "FLAIR only")


def channels_copied_from_flair(image: np.ndarray) -> tuple[bool, bool]:
    """(pre-contrast is FLAIR, post-contrast is FLAIR) for one H x W x 3 slice: pixel-identical channels."""
    if image.ndim != 3 or image.shape[-1] != 3:
        return False, False
    return (bool(np.array_equal(image[..., PRE], image[..., FLAIR])),
            bool(np.array_equal(image[..., POST], image[..., FLAIR])))


def sequence_group(pre_is_flair, post_is_flair) -> str:
    """One patient's sequences from its per-slice flags (sequences of booleans): "all sequences",
    "no post-contrast", "no pre-contrast" or "FLAIR only"."""
    pre = float(np.mean(np.asarray(pre_is_flair, dtype=bool))) >= MISSING_SHARE if len(pre_is_flair) else False
    post = float(np.mean(np.asarray(post_is_flair, dtype=bool))) >= MISSING_SHARE if len(post_is_flair) else False
    return SEQUENCE_GROUPS[int(post) + 2 * int(pre)]


def patient_sequence_group(images: np.ndarray) -> str:
    """:func:`sequence_group` of one patient's stacked slices (n, H, W, 3)."""
    flags = [channels_copied_from_flair(image) for image in images]
    return sequence_group([f[0] for f in flags], [f[1] for f in flags])


def patient_sequences(manifest) -> "pd.DataFrame":
    """One row per patient of a manifest: ``patient, sequences`` (:data:`SEQUENCE_GROUPS`)."""
    rows = [{"patient": patient, "sequences": sequence_group(group["pre_is_flair"].fillna(False).astype(bool),
                                                             group["post_is_flair"].fillna(False).astype(bool))}
            for patient, group in manifest.groupby("patient", sort=True)]
    return pd.DataFrame(rows, columns=["patient", "sequences"])


def describe_slice(files: SliceFiles, root: Path) -> dict:
    """Read one slice's image and mask and describe them (never raises)."""
    row = {
        "patient": files.patient,
        "folder": files.folder,
        "institution": institution_of(files.patient),
        "slice": files.slice,
        "image_path": str(files.image.relative_to(root)) if files.image else None,
        "mask_path": str(files.mask.relative_to(root)) if files.mask else None,
        "has_image": files.image is not None,
        "has_mask": files.mask is not None,
        "image_shape": None,
        "image_dtype": None,
        "mask_shape": None,
        "mask_dtype": None,
        "mask_values": None,
        "mask_binary": None,
        "tumour_pixels": None,
        "pre_is_flair": None,
        "post_is_flair": None,
        "read_error": None,
    }
    errors = []
    if files.image is not None:
        try:
            image = read_tif(files.image)
            row["image_shape"], row["image_dtype"] = shape_text(image), str(image.dtype)
            row["pre_is_flair"], row["post_is_flair"] = channels_copied_from_flair(image)
        except GliomicsError as exc:
            errors.append(str(exc))
    if files.mask is not None:
        try:
            mask = read_tif(files.mask)
            row["mask_shape"], row["mask_dtype"] = shape_text(mask), str(mask.dtype)
            values = np.unique(mask)
            row["mask_values"] = values_text(values)
            row["mask_binary"] = bool(np.isin(values, MASK_VALUES).all())
            row["tumour_pixels"] = int(np.count_nonzero(mask))
        except GliomicsError as exc:
            errors.append(str(exc))
    row["read_error"] = "; ".join(errors) if errors else None
    return row


def build_manifest(slices: list[SliceFiles], root: Path, progress=None):
    """Describe every slice (in parallel threads: tif reading is I/O bound).

    ``progress`` is an optional callable ``(done, total)`` for a progress bar.
    Returns a DataFrame with :data:`MANIFEST_COLUMNS`, sorted by folder and slice.
    """
    rows = []
    with ThreadPoolExecutor(max_workers=4) as pool:
        for i, row in enumerate(pool.map(lambda s: describe_slice(s, root), slices), 1):
            rows.append(row)
            if progress is not None:
                progress(i, len(slices))
    frame = pd.DataFrame(rows, columns=[c for c in MANIFEST_COLUMNS if c != "n_slices"])
    # Slices are numbered 1..n per patient; n is the number of slices found,
    # so a slice number above n means a gap in the numbering.
    frame.insert(4, "n_slices", frame.groupby("folder")["slice"].transform("size").astype(int))
    frame["tumour_pixels"] = frame["tumour_pixels"].astype("Int64")
    return frame.sort_values(["folder", "slice"], kind="stable").reset_index(drop=True)
