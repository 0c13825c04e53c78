"""What a segmenter expects of its input, stored with the model.

Training reads slices from the array store (:mod:`gliomics.data.arrays`);
inference on any cohort must prepare slices the same way. This module is
that one definition: optional pre-filter at full resolution, resize to the
model's size, then a z-score per channel over the patient's brain
(non-zero) pixels. The settings travel with every logged model as MLflow
model metadata (:mod:`gliomics.models.packaging`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np

from gliomics.data.arrays import patient_stats, prefilter_image, resize_image

NORMALISATION = "patient_zscore_brain"


@dataclass(frozen=True)
class Preprocessing:
    image_size: int = 128
    prefilter: str | None = None  # None, "median" or "gaussian"
    filter_size: int = 3
    sigma: float = 1.0
    normalisation: str = NORMALISATION
    #: Probability above which a pixel is tumour.
    threshold: float = 0.5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Preprocessing":
        known = {k: values[k] for k in cls.__dataclass_fields__ if k in values}
        return cls(**known)

    @classmethod
    def from_store_settings(cls, settings: dict, threshold: float = 0.5) -> "Preprocessing":
        """The preprocessing of an array store (``ArrayStore.settings``)."""
        return cls(
            image_size=int(settings["image_size"]),
            prefilter=settings.get("prefilter"),
            filter_size=int(settings.get("filter_size") or 3),
            sigma=float(settings.get("sigma") or 1.0),
            threshold=threshold,
        )

    def prepare_patient(self, images: np.ndarray) -> np.ndarray:
        """One patient's slices (n, H, W, 3) uint8 → model input (n, S, S, 3) float32."""
        if self.normalisation != NORMALISATION:
            raise ValueError(f"unknown normalisation {self.normalisation!r}")
        prepared = np.stack([
            resize_image(prefilter_image(image, self.prefilter, filter_size=self.filter_size, sigma=self.sigma),
                         self.image_size)
            for image in images
        ])
        mean, std, _ = patient_stats(prepared, np.zeros(len(prepared), dtype=np.int64), 1)
        return ((prepared.astype(np.float32) - mean[0]) / std[0]).astype(np.float32)

    def restore_size(self, probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """Model output (n, S, S[, 1]) → probabilities at the original (n, H, W)."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        if probabilities.ndim == 4:
            probabilities = probabilities[..., 0]
        if probabilities.shape[1:] == tuple(shape):
            return probabilities
        return np.stack([cv2.resize(p, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR) for p in probabilities])
