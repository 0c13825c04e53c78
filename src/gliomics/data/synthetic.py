"""A deterministic synthetic cohort in the exact Kaggle ``kaggle_3m`` layout.

The demo data of the platform: it runs the whole pipeline in minutes, on any
machine, with no download. Each patient gets a head phantom (skull rim,
brain, ventricles, smooth anatomical texture) in three channels
(pre-contrast, FLAIR, post-contrast) and a 3D tumour that is bright in FLAIR.

The tumour surface is a star-shaped radius function over angle and height,
so that shape varies the way radiogenomics cares about:

- *lobulation / margin irregularity* (low-order and high-order angular
  harmonics), which drives ``RNASeqCluster`` (irregular → 1, smooth → 3);
- *elongation* (in-plane axis ratio), which drives ``MethylationCluster``
  (elongated → 4, round → 5);
- *texture heterogeneity* (fine-grained versus smooth, coarse FLAIR texture
  inside the tumour), which drives ``CNCluster`` (heterogeneous → 1,
  homogeneous → 2).

The other families are random. These planted links give the association
analysis a true signal to find (and the remaining families a null to keep).

Determinism: the cohort is a pure function of ``(seed, n_patients)``. All
randomness comes from one ``numpy.random.Generator`` (PCG64, stable across
platforms); intensities are rounded to uint8 after bounded float work; tifs
are written without timestamps; ``data.csv`` is written line by line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy.ndimage import gaussian_filter

from gliomics.data.kaggle import CLINICAL_COLUMNS, CLINICAL_FILE, IMAGE_SHAPE

SIZE = IMAGE_SHAPE[0]
INSTITUTIONS = ("CS", "DU", "FG", "HT")
#: Through-plane step in in-plane pixel units used to lay out the 3D phantom.
SLICE_STEP_PX = 6.0


@dataclass(frozen=True)
class SyntheticPatient:
    """The latent traits of one synthetic patient (what the labels depend on)."""

    folder: str
    n_slices: int
    irregular: bool
    elongated: bool
    heterogeneous: bool
    radius: float  # mean in-plane tumour radius, pixels
    clinical: dict


def _smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Zero-mean, unit-variance Gaussian-filtered noise (spatially correlated)."""
    field = gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
    return field / (field.std() + 1e-12)


def _patient_traits(rng: np.random.Generator, index: int, n_patients: int) -> SyntheticPatient:
    institution = INSTITUTIONS[index % len(INSTITUTIONS)]
    number = 4900 + 37 * index + int(rng.integers(0, 30))
    date = f"{1995 + int(rng.integers(0, 12))}{int(rng.integers(1, 13)):02d}{int(rng.integers(1, 29)):02d}"
    patient = f"TCGA_{institution}_{number:04d}"
    # Balanced latent traits, interleaved so that every histology and
    # institution sees both levels of each trait.
    irregular = index % 2 == 0
    elongated = (index // 2) % 2 == 0
    heterogeneous = (index // 4) % 2 == 0
    histology = 1 + index % 3
    clinical = {
        "Patient": patient,
        "RNASeqCluster": 1 if irregular else 3,
        "MethylationCluster": 4 if elongated else 5,
        "miRNACluster": int(rng.integers(1, 5)),
        "CNCluster": 1 if heterogeneous else 2,
        "RPPACluster": int(rng.integers(1, 5)),
        "OncosignCluster": int(rng.integers(1, 4)),
        "COCCluster": int(rng.integers(1, 4)),
        "histological_type": histology,
        "neoplasm_histologic_grade": int(rng.integers(1, 3)),
        "tumor_tissue_site": 1,
        "laterality": int(rng.integers(1, 4)),
        "tumor_location": int(rng.choice([1, 2, 4, 5, 6])),
        "gender": int(rng.integers(1, 3)),
        "age_at_initial_pathologic": int(rng.integers(20, 76)),
        "race": int(rng.choice([2, 3])),
        "ethnicity": int(rng.integers(1, 3)),
        "death01": int(rng.integers(0, 2)),
    }
    # Missing values where the real file has them; the planted families stay
    # complete so that their signal is testable at demo size.
    for column, rate in (("RPPACluster", 0.15), ("OncosignCluster", 0.1), ("ethnicity", 0.1)):
        if rng.random() < rate:
            clinical[column] = None
    n_slices = int(rng.integers(16, 25))
    radius = float(rng.uniform(14.0, 24.0))
    return SyntheticPatient(f"{patient}_{date}", n_slices, irregular, elongated, heterogeneous, radius, clinical)


def _tumour_volume(rng: np.random.Generator, traits: SyntheticPatient, head_radius: np.ndarray):
    """Boolean tumour volume (n_slices, SIZE, SIZE) and its FLAIR halo (0..1)."""
    n = traits.n_slices
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    centre_slice = rng.uniform(0.4, 0.6) * (n - 1)
    side = rng.choice([-1.0, 1.0])
    cy = SIZE / 2 + rng.uniform(-25, 15)
    cx = SIZE / 2 + side * rng.uniform(28, 45)
    angle = rng.uniform(0, np.pi)
    aspect = rng.uniform(1.7, 2.2) if traits.elongated else rng.uniform(1.0, 1.15)
    r0 = traits.radius
    half_height = rng.uniform(2.2, 4.0) * SLICE_STEP_PX + r0 * 0.4
    # Angular harmonics: a few low orders (lobes) and, for irregular
    # tumours, strong higher orders (a fluctuating margin).
    orders = np.arange(2, 15)
    amplitude = np.where(orders <= 4, 0.16, 0.05) if traits.irregular else np.where(orders <= 4, 0.04, 0.004)
    amplitude = amplitude * rng.uniform(0.6, 1.0, size=orders.size)
    phase = rng.uniform(0, 2 * np.pi, size=orders.size)
    twist = rng.uniform(-0.15, 0.15, size=orders.size)  # phase drift with height

    dy, dx = yy - cy, xx - cx
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    theta = np.arctan2(v, u)
    rho = np.hypot(u / np.sqrt(aspect), v * np.sqrt(aspect))
    cos_k, sin_k = np.cos(orders[:, None, None] * theta), np.sin(orders[:, None, None] * theta)
    tumour = np.zeros((n, SIZE, SIZE), dtype=bool)
    halo = np.zeros((n, SIZE, SIZE), dtype=np.float64)
    for z in range(n):
        height = (z - centre_slice) * SLICE_STEP_PX
        profile = 1.0 - (height / half_height) ** 2
        if profile <= 0:
            continue
        radius = r0 * np.sqrt(profile)
        # cos(k θ + φ) = cos kθ cos φ − sin kθ sin φ: the harmonics are computed once per patient.
        shift = phase + twist * z
        wobble = 1.0 + np.tensordot(amplitude * np.cos(shift), cos_k, axes=1) - np.tensordot(
            amplitude * np.sin(shift), sin_k, axes=1
        )
        boundary = radius * wobble
        inside_head = np.hypot((yy - SIZE / 2) / head_radius[z, 0], (xx - SIZE / 2) / head_radius[z, 1]) < 0.92
        tumour[z] = (rho < boundary) & inside_head
        # Peritumoural FLAIR fall-off: realistic edges, not a hard step.
        halo[z] = np.clip(1.0 - (rho - boundary) / (0.35 * r0 + 3.0), 0.0, 1.0) * inside_head
    return tumour, halo


def _patient_slices(rng: np.random.Generator, traits: SyntheticPatient):
    """Yield (image uint8 SIZExSIZEx3, mask uint8 SIZExSIZE) for each slice."""
    n = traits.n_slices
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    heights = np.linspace(-0.92, 0.92, n)
    head_a, head_b = rng.uniform(92, 104), rng.uniform(76, 86)
    scale = np.sqrt(1.0 - heights**2)[:, None] * np.array([head_a, head_b])[None, :]
    tumour, halo = _tumour_volume(rng, traits, scale)
    contrast = np.array([1.0, 1.0, 1.0]) * rng.uniform(0.9, 1.1, size=3)
    # Heterogeneous: fine-grained, strong texture; homogeneous: smooth, coarse
    # variation. GLCM quantises each tumour over its own range, so the grain
    # (not the amplitude) is what separates them.
    grain = 0.8 if traits.heterogeneous else 4.0
    hetero_amp = 28.0 if traits.heterogeneous else 14.0
    for z in range(n):
        ry, rx = scale[z]
        r = np.hypot((yy - SIZE / 2) / ry, (xx - SIZE / 2) / rx)
        head = r < 1.0
        brain = r < 0.9
        skull = head & ~brain
        ventricles = (np.hypot((yy - SIZE / 2) / (0.22 * ry), (np.abs(xx - SIZE / 2) - 0.12 * rx) / (0.08 * rx)) < 1.0) & (
            abs(heights[z]) < 0.45
        )
        anatomy = _smooth_noise(rng, (SIZE, SIZE), 6.0)
        speckle = rng.standard_normal((SIZE, SIZE, 3))
        texture = _smooth_noise(rng, (SIZE, SIZE), grain)
        image = np.zeros((SIZE, SIZE, 3), dtype=np.float64)
        # channel 0 pre-contrast, 1 FLAIR, 2 post-contrast
        base = np.array([95.0, 85.0, 100.0]) * contrast
        for c in range(3):
            channel = np.where(brain, base[c] + 8.0 * anatomy, 0.0)
            channel = np.where(skull, (150.0, 60.0, 165.0)[c], channel)
            channel = np.where(ventricles, (45.0, 25.0, 50.0)[c], channel)
            image[..., c] = channel
        t = tumour[z]
        image[..., 1] += brain * halo[z] * 35.0
        image[..., 1] += t * (55.0 + hetero_amp * texture)
        image[..., 0] -= t * (12.0 + 4.0 * texture)
        image[..., 2] += t * (8.0 + 10.0 * np.clip(texture, 0, None))
        image += head[..., None] * 4.0 * speckle
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        mask = (t * 255).astype(np.uint8)
        yield image, mask


def synthetic_patients(seed: int, n_patients: int) -> list[SyntheticPatient]:
    """The latent traits of every patient (cheap; no images)."""
    rng = np.random.default_rng([seed, 0])
    return [_patient_traits(rng, i, n_patients) for i in range(n_patients)]


def write_cohort(out_dir: str | Path, *, seed: int, n_patients: int, progress=None) -> list[SyntheticPatient]:
    """Write the cohort to ``out_dir`` (Kaggle layout) and return its patients.

    ``out_dir`` must be empty or absent; the caller makes the write atomic.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    patients = synthetic_patients(seed, n_patients)
    for index, traits in enumerate(patients):
        # An independent stream per patient: patient i does not depend on n_patients.
        rng = np.random.default_rng([seed, 1, index])
        folder = out_dir / traits.folder
        folder.mkdir()
        for z, (image, mask) in enumerate(_patient_slices(rng, traits), start=1):
            stem = folder / f"{traits.folder}_{z}"
            tifffile.imwrite(f"{stem}.tif", image, photometric="rgb", metadata=None, software=False)
            tifffile.imwrite(f"{stem}_mask.tif", mask, photometric="minisblack", metadata=None, software=False)
        if progress is not None:
            progress(index + 1, len(patients))
    _write_clinical(out_dir / CLINICAL_FILE, [p.clinical for p in patients])
    return patients


def _write_clinical(path: Path, rows: list[dict]) -> None:
    lines = [",".join(CLINICAL_COLUMNS)]
    for row in sorted(rows, key=lambda r: r["Patient"]):
        lines.append(",".join("" if row[c] is None else str(row[c]) for c in CLINICAL_COLUMNS))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
