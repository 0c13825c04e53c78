"""``tf.data`` datasets over an array store (see :mod:`gliomics.data.arrays`).

Training (:func:`train_dataset`):

- batches are drawn from the slices of the given patients only; each batch
  holds ``tumour_fraction`` of tumour slices (slices whose stored mask is
  non-empty) and the rest non-tumour slices, drawn with replacement. When
  ``batch_size * tumour_fraction`` is not a whole number the tumour count is
  rounded up or down at random so that the long-run fraction is exact.
  ``tumour_fraction=None`` samples slices uniformly (the natural ratio; most
  slices are empty). If the patients have no tumour (or no empty) slice,
  all are drawn from the kind there is.
- batch ``b`` is made entirely from the seed sequence ``(seed, b)``: which
  slices, and every augmentation draw. A batch's content therefore does not
  depend on thread scheduling of the parallel map, and a resumed run can
  start at ``start_batch`` and get the batches an uninterrupted run would.
- augmentation (albumentations, applied per slice on the uint8 image and its
  mask together, then the per-patient z-score of the store): see
  :class:`Augment` for the transforms and their default probabilities.
  Geometric transforms use nearest-neighbour interpolation for the mask and
  fill borders with 0 (background) in both.
- the Python work runs in ``tf.numpy_function`` inside a parallel,
  deterministic ``map``, followed by ``prefetch``.

Evaluation (:func:`eval_dataset`): every slice of the given patients exactly
once, patients in the given order and each patient's slices in slice order,
no augmentation, no sampling; :func:`eval_index` gives the matching rows so
that predictions can be reassembled into per-patient volumes.

Elements are ``(images, masks)``: float32 ``(B, S, S, 3)`` normalised
images and float32 ``(B, S, S, 1)`` 0/1 masks; with ``with_rows=True`` a
third int64 ``(B,)`` tensor holds the store row of each slice.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass

import albumentations as A
import cv2
import numpy as np
import tensorflow as tf

from gliomics.data.arrays import ArrayStore, open_array_store
from gliomics.errors import GliomicsError


@dataclass(frozen=True)
class Augment:
    """Augmentation parameters (probabilities are per slice).

    - ``hflip``/``vflip``: horizontal / vertical flips;
    - ``affine`` (shift-scale-rotate): shift up to ``shift`` of the size,
      scale by ``1 +/- scale``, rotate up to ``+/- rotate`` degrees;
    - ``brightness_contrast``: brightness and contrast changes up to
      ``+/- brightness`` and ``+/- contrast`` (image only);
    - ``distortion``: ``"elastic"`` (ElasticTransform, ``elastic_alpha``,
      ``elastic_sigma``), ``"grid"`` (GridDistortion, ``grid_limit``) or
      ``None``, with probability ``distortion_p``;
    - ``missing_sequence``: with this probability a slice loses its
      pre-contrast, its post-contrast or both sequences (one of the three,
      equally likely), which are replaced by its FLAIR channel, after the
      per-patient z-score. This is how the TCGA-LGG data fill a missing
      sequence (10 of 110 patients; 5 are FLAIR in all three channels), so a
      model trained with it segments whatever sequences a patient has. A real
      FLAIR-only patient's channels are identical before and after the
      z-score, so the substitute equals what such a patient gives.
    """

    hflip: float = 0.5
    vflip: float = 0.0
    affine: float = 0.5
    shift: float = 0.0625
    scale: float = 0.1
    rotate: float = 15.0
    brightness_contrast: float = 0.3
    brightness: float = 0.1
    contrast: float = 0.1
    distortion: str | None = "grid"
    distortion_p: float = 0.2
    grid_limit: float = 0.2
    elastic_alpha: float = 20.0
    elastic_sigma: float = 5.0
    missing_sequence: float = 0.0

    def __post_init__(self):
        if not 0.0 <= float(self.missing_sequence) <= 1.0:
            raise GliomicsError(f"augment.missing_sequence must be a probability in [0, 1], got {self.missing_sequence}")

    @classmethod
    def from_params(cls, params) -> "Augment | None":
        """From an :class:`Augment`, a dict of its fields (unknown keys are an
        error), ``True`` (defaults) or ``None``/``False`` (no augmentation)."""
        if params is None or params is False:
            return None
        if params is True:
            return cls()
        if isinstance(params, cls):
            return params
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(params) - known)
        if unknown:
            raise GliomicsError(f"unknown augmentation parameters: {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return cls(**params)

    def compose(self):
        """The albumentations pipeline for these parameters."""
        if self.distortion not in (None, "elastic", "grid"):
            raise GliomicsError(f"distortion must be 'elastic', 'grid' or None, got {self.distortion!r}")
        border = dict(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0)
        transforms = []
        if self.hflip > 0:
            transforms.append(A.HorizontalFlip(p=self.hflip))
        if self.vflip > 0:
            transforms.append(A.VerticalFlip(p=self.vflip))
        if self.affine > 0:
            transforms.append(
                A.Affine(
                    translate_percent=(-self.shift, self.shift),
                    scale=(1 - self.scale, 1 + self.scale),
                    rotate=(-self.rotate, self.rotate),
                    interpolation=cv2.INTER_LINEAR,
                    mask_interpolation=cv2.INTER_NEAREST,
                    p=self.affine,
                    **border,
                )
            )
        if self.distortion == "grid" and self.distortion_p > 0:
            transforms.append(
                A.GridDistortion(distort_limit=self.grid_limit, mask_interpolation=cv2.INTER_NEAREST,
                                 p=self.distortion_p, **border)
            )
        if self.distortion == "elastic" and self.distortion_p > 0:
            transforms.append(
                A.ElasticTransform(alpha=self.elastic_alpha, sigma=self.elastic_sigma,
                                   mask_interpolation=cv2.INTER_NEAREST, p=self.distortion_p, **border)
            )
        if self.brightness_contrast > 0:
            transforms.append(
                A.RandomBrightnessContrast(brightness_limit=self.brightness, contrast_limit=self.contrast,
                                           p=self.brightness_contrast)
            )
        return A.Compose(transforms, seed=0)

    def as_dict(self) -> dict:
        return asdict(self)


def _store(store) -> ArrayStore:
    return store if isinstance(store, ArrayStore) else open_array_store(store)


def _check_patients(patients) -> list[str]:
    if isinstance(patients, str):
        raise GliomicsError("patients must be a list of patient IDs, not a single string")
    patients = list(patients)
    if not patients:
        raise GliomicsError("no patients given")
    if len(set(patients)) != len(patients):
        raise GliomicsError("patient list has duplicates")
    return patients


def batch_rng(seed: int, batch: int) -> np.random.Generator:
    """The generator that decides batch ``batch`` of a training stream."""
    return np.random.default_rng([int(seed), int(batch)])


def sample_batch_rows(tumour_rows, empty_rows, batch_size: int, tumour_fraction, rng) -> np.ndarray:
    """Rows of one training batch (see the module docstring)."""
    if tumour_fraction is None or len(tumour_rows) == 0 or len(empty_rows) == 0:
        pool = np.concatenate([tumour_rows, empty_rows])
        return rng.choice(pool, size=batch_size, replace=True)
    expected = batch_size * float(tumour_fraction)
    n_tumour = int(np.floor(expected))
    if rng.random() < expected - n_tumour:
        n_tumour += 1
    rows = np.concatenate(
        [rng.choice(tumour_rows, size=n_tumour, replace=True), rng.choice(empty_rows, size=batch_size - n_tumour, replace=True)]
    )
    return rng.permutation(rows)


#: Channels a missing-sequence draw replaces by FLAIR (channel 1): pre-contrast, post-contrast, or both.
MISSING_SEQUENCE_CHOICES = ((0,), (2,), (0, 2))
FLAIR = 1


def drop_sequences(x: np.ndarray, probability: float, rng: np.random.Generator) -> np.ndarray:
    """Replace, per slice with ``probability``, the pre-contrast, the post-contrast or both channels of the
    normalised batch ``x`` (B, S, S, 3) by its FLAIR channel, in place; returns ``x``."""
    for i in np.flatnonzero(rng.random(len(x)) < probability):
        for channel in MISSING_SEQUENCE_CHOICES[int(rng.integers(len(MISSING_SEQUENCE_CHOICES)))]:
            x[i, ..., channel] = x[i, ..., FLAIR]
    return x


def _load(store: ArrayStore, rows: np.ndarray):
    order = np.argsort(rows, kind="stable")  # memmap reads in file order
    images = np.empty((len(rows), *store.images.shape[1:]), np.uint8)
    masks = np.empty((len(rows), *store.masks.shape[1:]), np.uint8)
    images[order] = store.images[rows[order]]
    masks[order] = store.masks[rows[order]]
    return images, masks


def _finish(store: ArrayStore, images: np.ndarray, masks: np.ndarray, rows: np.ndarray, normalise: bool):
    x = store.normalise(images, rows) if normalise else images.astype(np.float32)
    y = masks.astype(np.float32)[..., None]
    return x, y


def train_batches(store, patients, *, batch_size: int = 8, tumour_fraction: float | None = 0.5, augment=True,
                  seed: int = 0, normalise: bool = True):
    """A callable ``make(batch_number) -> (images, masks, rows)`` in NumPy;
    the same function :func:`train_dataset` maps (useful for tests and
    debugging)."""
    store = _store(store)
    patients = _check_patients(patients)
    if batch_size < 1:
        raise GliomicsError(f"batch_size must be >= 1, got {batch_size}")
    if tumour_fraction is not None and not 0.0 <= float(tumour_fraction) <= 1.0:
        raise GliomicsError(f"tumour_fraction must be in [0, 1] or None, got {tumour_fraction}")
    rows = store.rows(patients)
    tumour = store.index["tumour"].to_numpy()[rows] > 0
    tumour_rows, empty_rows = rows[tumour], rows[~tumour]
    aug = Augment.from_params(augment)
    local = threading.local()  # one Compose per map thread: reseeded per batch

    def make(batch: int):
        rng = batch_rng(seed, batch)
        batch_rows = sample_batch_rows(tumour_rows, empty_rows, batch_size, tumour_fraction, rng)
        images, masks = _load(store, batch_rows)
        if aug is not None:
            compose = getattr(local, "compose", None)
            if compose is None:
                compose = local.compose = aug.compose()
            compose.set_random_seed(int(rng.integers(2**31 - 1)))
            for i in range(len(batch_rows)):
                out = compose(image=images[i], mask=masks[i])
                images[i], masks[i] = out["image"], out["mask"]
        x, y = _finish(store, images, masks, batch_rows, normalise)
        if aug is not None and aug.missing_sequence > 0:  # drawn last: other draws as without it
            drop_sequences(x, aug.missing_sequence, rng)
        return x, y, batch_rows.astype(np.int64)

    return make


def train_dataset(store, patients, *, batch_size: int = 8, tumour_fraction: float | None = 0.5, augment=True,
                  seed: int = 0, n_batches: int | None = None, start_batch: int = 0, normalise: bool = True,
                  num_parallel_calls=None, prefetch=None, with_rows: bool = False):
    """Training batches from ``patients`` of the store (an :class:`ArrayStore` or its folder).

    Infinite unless ``n_batches`` is given (use ``steps_per_epoch`` in
    ``fit``); batch numbers run from ``start_batch``. ``augment`` is an
    :class:`Augment`, a dict of its fields, ``True`` (defaults) or ``None``.
    ``num_parallel_calls``/``prefetch`` default to ``tf.data.AUTOTUNE``.
    """
    store = _store(store)
    make = train_batches(store, patients, batch_size=batch_size, tumour_fraction=tumour_fraction, augment=augment,
                         seed=seed, normalise=normalise)
    size = store.image_size
    autotune = tf.data.AUTOTUNE
    if n_batches is None:
        numbers = tf.data.Dataset.counter(start=start_batch, dtype=tf.int64)
    else:
        numbers = tf.data.Dataset.range(start_batch, start_batch + int(n_batches), output_type=tf.int64)

    def load(number):
        x, y, r = tf.numpy_function(lambda b: make(int(b)), [number], (tf.float32, tf.float32, tf.int64),
                                    stateful=False)
        x.set_shape((batch_size, size, size, 3))
        y.set_shape((batch_size, size, size, 1))
        r.set_shape((batch_size,))
        return (x, y, r) if with_rows else (x, y)

    ds = numbers.map(load, num_parallel_calls=num_parallel_calls or autotune, deterministic=True)
    return ds.prefetch(prefetch or autotune)


def eval_index(store, patients):
    """The store rows (a DataFrame with a ``row`` column) that
    :func:`eval_dataset` yields, in its order."""
    store = _store(store)
    rows = store.rows(_check_patients(patients))
    frame = store.index.iloc[rows].copy()
    frame.insert(0, "row", rows)
    return frame.reset_index(drop=True)


def eval_dataset(store, patients, *, batch_size: int = 8, normalise: bool = True, num_parallel_calls=None,
                 prefetch=None, with_rows: bool = False):
    """Every slice of ``patients`` exactly once, in patient then slice order (last batch may be short)."""
    store = _store(store)
    rows = store.rows(_check_patients(patients))
    size = store.image_size
    autotune = tf.data.AUTOTUNE

    def make(batch_rows):
        batch_rows = np.asarray(batch_rows, np.int64)
        images, masks = _load(store, batch_rows)
        x, y = _finish(store, images, masks, batch_rows, normalise)
        return x, y, batch_rows

    def load(batch_rows):
        x, y, r = tf.numpy_function(make, [batch_rows], (tf.float32, tf.float32, tf.int64), stateful=False)
        x.set_shape((None, size, size, 3))
        y.set_shape((None, size, size, 1))
        r.set_shape((None,))
        return (x, y, r) if with_rows else (x, y)

    ds = tf.data.Dataset.from_tensor_slices(rows).batch(int(batch_size))
    ds = ds.map(load, num_parallel_calls=num_parallel_calls or autotune, deterministic=True)
    return ds.prefetch(prefetch or autotune)
