"""The one reader of input slices: every command that reads a cohort's or a patient's tifs goes through it.

A Kaggle ``kaggle_3m`` slice is an image ``<folder>_<n>.tif`` of exactly
256x256x3 uint8 (pre-contrast, FLAIR, post-contrast) and, where masks are
read, its mask ``<folder>_<n>_mask.tif`` of exactly 256x256 uint8 holding
only 0 and 255 -- the same contract ``gliomics validate`` checks
(:func:`gliomics.validation.inputs.manifest_suite`) and the models record
(:data:`gliomics.models.packaging.INPUT_CONTRACT`). Anything else (another
size, a fourth channel, a grey image, uint16 or float pixels, a mask with
other values) is refused with one :class:`~gliomics.errors.GliomicsError`
line naming the file, what it holds and what was expected, instead of being
cast, stacked or resized into silently wrong numbers.

``gliomics evaluate`` (both tasks), ``segment``, ``features`` and
``analyze`` read through :func:`read_image` / :func:`read_mask` (or the
stacking helpers), so they accept and refuse exactly the same slices with
the same messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import tifffile

from gliomics.data.kaggle import IMAGE_SHAPE, MASK_SHAPE, read_tif
from gliomics.errors import GliomicsError

#: The only values a mask may hold: background and tumour.
MASK_VALUES = (0, 255)
#: At most this many distinct values are listed in a message (as the manifest does).
SHOWN_VALUES = 8


def shape_text(array: np.ndarray) -> str:
    """``256x256x3`` for an array of that shape."""
    return "x".join(str(d) for d in np.shape(array))


def values_text(values) -> str:
    """The sorted distinct ``values`` as the manifest and validation print them: ``0,128,255`` (at most
    :data:`SHOWN_VALUES`, then ``…``)."""
    values = np.asarray(values).ravel()
    return ",".join(str(v) for v in values[:SHOWN_VALUES]) + ("…" if values.size > SHOWN_VALUES else "")


def image_problem(image: np.ndarray) -> str | None:
    """Why ``image`` is not a Kaggle slice (``"image is 512x512x4 uint8, expected 256x256x3 uint8 (the Kaggle
    slice size)"``), or None when it is one."""
    if image.shape == IMAGE_SHAPE and image.dtype == np.uint8:
        return None
    return (f"image is {shape_text(image)} {image.dtype}, expected {'x'.join(map(str, IMAGE_SHAPE))} uint8 "
            "(the Kaggle slice size)")


def mask_problem(mask: np.ndarray) -> str | None:
    """Why ``mask`` is not a Kaggle mask (shape, dtype, or values other than 0/255), or None when it is one."""
    if mask.shape != MASK_SHAPE or mask.dtype != np.uint8:
        return (f"mask is {shape_text(mask)} {mask.dtype}, expected {'x'.join(map(str, MASK_SHAPE))} uint8 "
                "(the Kaggle mask size)")
    if ((mask != MASK_VALUES[0]) & (mask != MASK_VALUES[1])).any():  # cheap; the values only for the message
        return f"mask has values other than 0/255 (found {values_text(np.unique(mask))})"
    return None


def read_image(path: str | Path) -> np.ndarray:
    """One slice's image: 256x256x3 uint8, else a one-line :class:`GliomicsError` naming ``path``."""
    image = read_tif(Path(path))
    problem = image_problem(image)
    if problem:
        raise GliomicsError(f"{path}: {problem}")
    return image


def read_mask(path: str | Path) -> np.ndarray:
    """One slice's mask: 256x256 uint8 holding only 0 and 255, else a one-line :class:`GliomicsError` naming
    ``path``. Returned as read (uint8 0/255); ``read_mask(p) > 0`` is the tumour."""
    mask = read_tif(Path(path))
    problem = mask_problem(mask)
    if problem:
        raise GliomicsError(f"{path}: {problem}")
    return mask


def read_images(paths: Iterable[str | Path]) -> np.ndarray:
    """The images at ``paths`` stacked ``(n, 256, 256, 3)`` uint8 (each checked by :func:`read_image`)."""
    images = [read_image(path) for path in paths]
    return np.stack(images) if images else np.zeros((0, *IMAGE_SHAPE), np.uint8)


def read_masks(paths: Iterable[str | Path]) -> np.ndarray:
    """The masks at ``paths`` stacked ``(n, 256, 256)`` as booleans (tumour), each checked by
    :func:`read_mask`."""
    masks = [read_mask(path) > 0 for path in paths]
    return np.stack(masks) if masks else np.zeros((0, *MASK_SHAPE), bool)


def write_mask(path: Path, mask: np.ndarray) -> None:
    tifffile.imwrite(path, (np.asarray(mask, dtype=bool).astype(np.uint8) * 255), photometric="minisblack",
                     metadata=None, software=False)
