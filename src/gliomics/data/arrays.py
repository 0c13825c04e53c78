"""Decode a cohort once into a memory-mappable array store.

Training reads every slice many times; decoding tifs each epoch would cost
more than the model on 2 CPU cores. :func:`build_array_store` reads every
slice once and writes a folder::

    <out_dir>/
      images.npy    uint8 (N, S, S, 3)   resized (and optionally pre-filtered)
      masks.npy     uint8 (N, S, S)      0/1
      index.csv     one row per slice, row i <-> images[i]: patient, folder,
                    slice, tumour (0/1 after resizing), tumour_pixels
      norm.csv      per patient: mean_0..2, std_0..2 (see "Normalisation")
      store.json    settings, fingerprint, format version

Rows are sorted by patient folder, then slice number, so a patient's slices
are contiguous and in anatomical order.

Resizing (``image_size``, 128 or 256; 256 is the original size and is a copy):

- images: ``cv2.INTER_AREA`` when shrinking (averages the covered source
  pixels, no aliasing), ``cv2.INTER_LINEAR`` when enlarging;
- masks: the 0/1 mask is area-averaged (the fraction of each target pixel
  covered by tumour) and thresholded at 0.5, which keeps thin structures
  better than nearest-neighbour picking and never invents new labels.

Pre-filters (``prefilter``) are applied to the image at its original
resolution, before resizing, per channel, never to the mask:
``"median"`` is ``cv2.medianBlur`` with ``filter_size`` (odd, 3 or 5) and
``"gaussian"`` is ``cv2.GaussianBlur`` with standard deviation ``sigma`` px.

Normalisation: the store keeps uint8 images (a quarter of float32) and, per
patient and channel, the mean and standard deviation of the stored image
over the patient's brain pixels (pixels where any channel is non-zero, over
all the patient's slices). :meth:`ArrayStore.normalise` applies the
per-patient z-score ``(x - mean) / std`` on the fly to whole images (the
background then holds the constant ``-mean/std``); the result has zero mean
and unit standard deviation per channel over each patient's brain. The
statistics are computed after any pre-filter and resizing, i.e. on exactly
what the network sees. This removes the scanner- and institution-dependent
intensity scale of the three MR sequences, which are not calibrated.

Caching: the fingerprint hashes the settings, the format version and, for
every input file, its path relative to the cohort, size and modification
time (plus the manifest's bytes when one is given). A build whose
fingerprint matches the existing store's is skipped. The store folder is
written through :func:`gliomics.io.atomic_path`: a failed build leaves no
store (or the previous one, intact).
"""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from gliomics.data.kaggle import read_tif, resolve_cohort_dir, scan_cohort
from gliomics.errors import GliomicsError
from gliomics.io import atomic_path

STORE_VERSION = 1
PREFILTERS = (None, "median", "gaussian")
IMAGES_FILE = "images.npy"
MASKS_FILE = "masks.npy"
INDEX_FILE = "index.csv"
NORM_FILE = "norm.csv"
META_FILE = "store.json"


@dataclass(frozen=True)
class BuildResult:
    """What :func:`build_array_store` did."""

    path: Path
    fingerprint: str
    n_slices: int
    built: bool  # False when an up-to-date store was found and kept


@dataclass
class ArrayStore:
    """An opened store: memory-mapped arrays plus the slice index."""

    path: Path
    images: np.ndarray  # uint8 (N, S, S, 3), memmap
    masks: np.ndarray  # uint8 (N, S, S), memmap, 0/1
    index: "object"  # pandas DataFrame, row i <-> images[i]
    norm: "object"  # pandas DataFrame indexed by patient
    settings: dict
    fingerprint: str
    patient_codes: np.ndarray = field(repr=False)  # int (N,): row -> row of mean/std
    mean: np.ndarray = field(repr=False)  # float32 (P, 3)
    std: np.ndarray = field(repr=False)  # float32 (P, 3)

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])

    @property
    def patients(self) -> list[str]:
        return list(self.norm.index)

    def rows(self, patients) -> np.ndarray:
        """Row numbers of the given patients' slices: patients in the given
        order, slices in slice order. Unknown patients raise GliomicsError."""
        patients = list(patients)
        unknown = sorted(set(patients) - set(self.norm.index))
        if unknown:
            raise GliomicsError(f"{self.path}: patients not in the array store: {', '.join(unknown)}")
        groups = self.index.groupby("patient", sort=False).indices
        return np.concatenate([np.sort(groups[p]) for p in patients]).astype(np.int64) if patients else np.zeros(0, np.int64)

    def normalise(self, images: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Per-patient z-score per channel of ``images`` (B, S, S, 3) taken from ``rows``."""
        codes = self.patient_codes[np.asarray(rows)]
        mean = self.mean[codes][:, None, None, :]
        std = self.std[codes][:, None, None, :]
        return ((images.astype(np.float32) - mean) / std).astype(np.float32)


# ---------------------------------------------------------------- building


def _input_slices(root: Path, manifest):
    """(patient, folder, slice, image_path, mask_path) for every slice."""
    if manifest is None:
        slices, _warnings, _folders = scan_cohort(root)
        rows = [(s.patient, s.folder, s.slice, s.image, s.mask) for s in slices]
    else:
        frame = manifest if isinstance(manifest, pd.DataFrame) else pd.read_csv(manifest)
        rows = []
        for rec in frame.itertuples(index=False):
            image = root / rec.image_path if isinstance(rec.image_path, str) else None
            mask = root / rec.mask_path if isinstance(rec.mask_path, str) else None
            rows.append((rec.patient, rec.folder, int(rec.slice), image, mask))
        rows.sort(key=lambda r: (r[1], r[2]))
    if not rows:
        raise GliomicsError(f"{root}: no slices to put in the array store")
    for patient, folder, n, image, mask in rows:
        if image is None or mask is None:
            what = "image" if image is None else "mask"
            raise GliomicsError(f"{root}: slice {n} of {folder} has no {what} (the array store needs both)")
    return rows


def _settings(image_size, prefilter, filter_size, sigma) -> dict:
    if int(image_size) <= 0:
        raise GliomicsError(f"image_size must be positive, got {image_size}")
    if prefilter not in PREFILTERS:
        raise GliomicsError(f"prefilter must be one of {PREFILTERS}, got {prefilter!r}")
    if prefilter == "median" and (int(filter_size) % 2 != 1 or int(filter_size) < 3):
        raise GliomicsError(f"median filter_size must be odd and >= 3, got {filter_size}")
    if prefilter == "gaussian" and float(sigma) <= 0:
        raise GliomicsError(f"gaussian sigma must be positive, got {sigma}")
    return {
        "image_size": int(image_size),
        "prefilter": prefilter,
        "filter_size": int(filter_size) if prefilter == "median" else None,
        "sigma": float(sigma) if prefilter == "gaussian" else None,
        "image_resize": "cv2.INTER_AREA (shrink) / cv2.INTER_LINEAR (enlarge)",
        "mask_resize": "area average of the 0/1 mask, >= 0.5",
        "normalisation": "per-patient z-score per channel over brain (non-zero) pixels, on the fly",
    }


def _fingerprint(root: Path, rows, settings: dict, manifest) -> str:
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": STORE_VERSION, **settings}, sort_keys=True).encode())
    if manifest is not None and not hasattr(manifest, "columns"):
        digest.update(Path(manifest).read_bytes())
    for patient, folder, n, image, mask in rows:
        for path in (image, mask):
            try:
                st = path.stat()
            except OSError:
                raise GliomicsError(f"{path}: missing") from None
            digest.update(f"{patient}|{folder}|{n}|{path.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def prefilter_image(image: np.ndarray, prefilter, *, filter_size: int = 3, sigma: float = 1.0) -> np.ndarray:
    """Apply the optional median/gaussian pre-filter to a uint8 (H, W, C) image."""
    if prefilter is None:
        return image
    image = np.ascontiguousarray(image)
    if prefilter == "median":
        return cv2.medianBlur(image, int(filter_size))
    if prefilter == "gaussian":
        return cv2.GaussianBlur(image, (0, 0), float(sigma))
    raise GliomicsError(f"unknown prefilter {prefilter!r}")


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a uint8 (H, W, C) image: area when shrinking, linear when enlarging."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrink = size < image.shape[0]
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """Resize a 0/1 mask by area averaging and thresholding at 0.5."""
    binary = (mask > 0).astype(np.float32)
    if binary.shape[0] != size or binary.shape[1] != size:
        shrink = size < binary.shape[0]
        binary = cv2.resize(binary, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return (binary >= 0.5).astype(np.uint8)


def _decode(item, settings):
    _patient, _folder, _n, image_path, mask_path = item
    image = read_tif(image_path)
    mask = read_tif(mask_path)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise GliomicsError(f"{image_path}: expected an (H, W, 3) image, got shape {image.shape}")
    if image.dtype != np.uint8:
        raise GliomicsError(f"{image_path}: expected uint8, got {image.dtype}")
    if mask.ndim == 3:
        mask = mask.max(axis=-1)
    if mask.shape != image.shape[:2]:
        raise GliomicsError(f"{mask_path}: mask shape {mask.shape} does not match image {image.shape[:2]}")
    image = prefilter_image(image, settings["prefilter"], filter_size=settings["filter_size"] or 3,
                            sigma=settings["sigma"] or 1.0)
    size = settings["image_size"]
    return resize_image(image, size), resize_mask(mask, size)


def patient_stats(images: np.ndarray, codes: np.ndarray, n_patients: int):
    """Mean and std per patient and channel over brain (non-zero) pixels."""
    sums = np.zeros((n_patients, 3), np.float64)
    squares = np.zeros((n_patients, 3), np.float64)
    counts = np.zeros(n_patients, np.float64)
    for i in range(images.shape[0]):
        img = np.asarray(images[i], dtype=np.float64)
        brain = img.max(axis=-1) > 0
        pixels = img[brain]
        sums[codes[i]] += pixels.sum(axis=0)
        squares[codes[i]] += (pixels**2).sum(axis=0)
        counts[codes[i]] += brain.sum()
    safe = np.maximum(counts, 1)[:, None]
    mean = sums / safe
    var = np.maximum(squares / safe - mean**2, 0.0)
    std = np.sqrt(var)
    mean[counts == 0] = 0.0
    std[(counts == 0)[:, None].repeat(3, axis=1) | (std < 1e-3)] = 1.0
    return mean.astype(np.float32), std.astype(np.float32), counts.astype(np.int64)


def build_array_store(
    cohort_dir: str | Path,
    out_dir: str | Path,
    *,
    image_size: int = 128,
    prefilter: str | None = None,
    filter_size: int = 3,
    sigma: float = 1.0,
    manifest: str | Path | None = None,
    workers: int | None = None,
    force: bool = False,
    progress=None,
) -> BuildResult:
    """Decode every slice of ``cohort_dir`` once into an array store at ``out_dir``.

    ``manifest`` (the validate stage's ``manifest.csv``, or a DataFrame with
    its ``patient, folder, slice, image_path, mask_path`` columns) selects
    the slices; without it the cohort folder is scanned. The build is
    skipped when ``out_dir`` holds a store with the same fingerprint, unless
    ``force``. ``progress`` is an optional callable ``progress(done, total)``.
    """
    root = resolve_cohort_dir(cohort_dir)
    out_dir = Path(out_dir)
    settings = _settings(image_size, prefilter, filter_size, sigma)
    rows = _input_slices(root, manifest)
    fingerprint = _fingerprint(root, rows, settings, manifest)

    if not force and (out_dir / META_FILE).exists():
        try:
            existing = json.loads((out_dir / META_FILE).read_text())
        except (OSError, ValueError):
            existing = {}
        if existing.get("fingerprint") == fingerprint and all(
            (out_dir / name).exists() for name in (IMAGES_FILE, MASKS_FILE, INDEX_FILE, NORM_FILE)
        ):
            return BuildResult(out_dir, fingerprint, int(existing.get("n_slices", len(rows))), built=False)

    size = settings["image_size"]
    n = len(rows)
    patients = list(dict.fromkeys(r[0] for r in rows))
    code_of = {p: i for i, p in enumerate(patients)}
    codes = np.array([code_of[r[0]] for r in rows], np.int64)
    tumour_pixels = np.zeros(n, np.int64)

    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        images = np.lib.format.open_memmap(tmp / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=(n, size, size, 3))
        masks = np.lib.format.open_memmap(tmp / MASKS_FILE, mode="w+", dtype=np.uint8, shape=(n, size, size))
        workers = workers or min(4, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i, (image, mask) in enumerate(pool.map(lambda item: _decode(item, settings), rows)):
                images[i] = image
                masks[i] = mask
                tumour_pixels[i] = int(mask.sum())
                if progress is not None:
                    progress(i + 1, n)
        mean, std, counts = patient_stats(images, codes, len(patients))
        images.flush()
        masks.flush()
        del images, masks

        index = pd.DataFrame(
            {
                "patient": [r[0] for r in rows],
                "folder": [r[1] for r in rows],
                "slice": [r[2] for r in rows],
                "tumour": (tumour_pixels > 0).astype(int),
                "tumour_pixels": tumour_pixels,
            }
        )
        index.to_csv(tmp / INDEX_FILE, index=False)
        norm = pd.DataFrame({"patient": patients, "brain_pixels": counts})
        for c in range(3):
            norm[f"mean_{c}"] = mean[:, c]
        for c in range(3):
            norm[f"std_{c}"] = std[:, c]
        norm.to_csv(tmp / NORM_FILE, index=False)
        meta = {
            "version": STORE_VERSION,
            "fingerprint": fingerprint,
            "n_slices": n,
            "n_patients": len(patients),
            "cohort": str(root),
            "settings": settings,
        }
        (tmp / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return BuildResult(out_dir, fingerprint, n, built=True)


def open_array_store(path: str | Path) -> ArrayStore:
    """Open a store written by :func:`build_array_store` (arrays memory-mapped read-only)."""
    path = Path(path)
    if not (path / META_FILE).exists():
        raise GliomicsError(f"{path}: not an array store (no {META_FILE})")
    meta = json.loads((path / META_FILE).read_text())
    if meta.get("version") != STORE_VERSION:
        raise GliomicsError(f"{path}: array store version {meta.get('version')}, expected {STORE_VERSION}; rebuild it")
    images = np.load(path / IMAGES_FILE, mmap_mode="r")
    masks = np.load(path / MASKS_FILE, mmap_mode="r")
    index = pd.read_csv(path / INDEX_FILE, dtype={"patient": str, "folder": str})
    norm = pd.read_csv(path / NORM_FILE, dtype={"patient": str}).set_index("patient")
    if not (len(index) == images.shape[0] == masks.shape[0]):
        raise GliomicsError(f"{path}: index and arrays disagree in length; rebuild the store")
    code_of = {p: i for i, p in enumerate(norm.index)}
    codes = index["patient"].map(code_of).to_numpy(np.int64)
    mean = norm[[f"mean_{c}" for c in range(3)]].to_numpy(np.float32)
    std = norm[[f"std_{c}" for c in range(3)]].to_numpy(np.float32)
    return ArrayStore(path, images, masks, index, norm, meta["settings"], meta["fingerprint"], codes, mean, std)
