"""Reader for the Kaggle LGG segmentation layout (``kaggle_3m``).

Layout (Buda et al. 2019, as downloaded from Kaggle)::

    kaggle_3m/
      data.csv                                  one row per patient
      TCGA_CS_4941_19960909/                    one folder per patient
        TCGA_CS_4941_19960909_1.tif             slice 1: 256x256x3 uint8
        TCGA_CS_4941_19960909_1_mask.tif        its mask: 256x256 uint8, 0/255
        ...

The channels of a slice are pre-contrast, FLAIR and post-contrast. The folder
name is ``<Patient>_<acquisition date>``; ``data.csv`` uses ``Patient``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile

from gliomics.errors import GliomicsError

CLINICAL_FILE = "data.csv"

#: Cluster families and the code ranges documented with the data set.
CLUSTER_FAMILIES: dict[str, tuple[int, ...]] = {
    "RNASeqCluster": (1, 2, 3, 4),
    "MethylationCluster": (1, 2, 3, 4, 5),
    "miRNACluster": (1, 2, 3, 4),
    "CNCluster": (1, 2, 3),
    "RPPACluster": (1, 2, 3, 4),
    "OncosignCluster": (1, 2, 3),
    "COCCluster": (1, 2, 3),
}

#: Other coded clinical columns and their allowed codes (empty = missing).
CLINICAL_CODES: dict[str, tuple[int, ...]] = {
    "histological_type": (1, 2, 3),  # astrocytoma, oligoastrocytoma, oligodendroglioma
    "neoplasm_histologic_grade": (1, 2),  # G2, G3
    "tumor_tissue_site": (1,),
    "laterality": (1, 2, 3),
    "tumor_location": (1, 2, 3, 4, 5, 6),
    "gender": (1, 2),
    "race": (1, 2, 3),
    "ethnicity": (1, 2),
    "death01": (0, 1),
}

HISTOLOGY_NAMES = {1: "astrocytoma", 2: "oligoastrocytoma", 3: "oligodendroglioma"}

#: The 18 columns of the original ``data.csv``, in file order.
CLINICAL_COLUMNS: tuple[str, ...] = (
    "Patient",
    *CLUSTER_FAMILIES,
    "histological_type",
    "neoplasm_histologic_grade",
    "tumor_tissue_site",
    "laterality",
    "tumor_location",
    "gender",
    "age_at_initial_pathologic",
    "race",
    "ethnicity",
    "death01",
)

IMAGE_SHAPE = (256, 256, 3)
MASK_SHAPE = (256, 256)

PATIENT_PATTERN = r"^TCGA_[A-Z0-9]{2}_[A-Z0-9]{4}$"
FOLDER_PATTERN = r"^TCGA_[A-Z0-9]{2}_[A-Z0-9]{4}_\d{8}$"
PATIENT_RE = re.compile(PATIENT_PATTERN)
FOLDER_RE = re.compile(FOLDER_PATTERN)
SLICE_RE = re.compile(r"^(?P<folder>.+)_(?P<n>\d+)(?P<mask>_mask)?\.tif$")


@dataclass(frozen=True)
class SliceFiles:
    """The files of one slice; ``image`` or ``mask`` is None when absent."""

    patient: str
    folder: str
    slice: int
    image: Path | None
    mask: Path | None


def resolve_cohort_dir(path: str | Path) -> Path:
    """Return the folder that holds the patient folders.

    Accepts the ``kaggle_3m`` folder itself or a folder above it, as the
    Kaggle archive unpacks (``lgg-mri-segmentation/kaggle_3m``).
    """
    path = Path(path)
    if not path.is_dir():
        raise GliomicsError(f"{path}: no such directory")
    for candidate in (path, path / "kaggle_3m", path / "lgg-mri-segmentation" / "kaggle_3m"):
        if candidate.is_dir() and (
            (candidate / CLINICAL_FILE).exists() or any(_patient_folders(candidate))
        ):
            return candidate
    raise GliomicsError(
        f"{path}: not a cohort in the Kaggle layout (no {CLINICAL_FILE} and no TCGA_* patient folders)"
    )


def patient_of(folder: str) -> str:
    """``TCGA_CS_4941_19960909`` → ``TCGA_CS_4941``."""
    return folder[: -len("_YYYYMMDD")] if FOLDER_RE.match(folder) else folder


def institution_of(patient: str) -> str:
    """TCGA tissue source site code: ``TCGA_CS_4941`` → ``CS``."""
    parts = patient.split("_")
    return parts[1] if len(parts) > 1 else ""


def _patient_folders(root: Path):
    return (p for p in root.iterdir() if p.is_dir() and p.name.startswith("TCGA_"))


def scan_cohort(root: Path) -> tuple[list[SliceFiles], list[str], list[str]]:
    """List every slice of every patient folder under ``root``.

    Returns the slices (sorted by folder, slice number), warnings about
    files that do not belong to the layout (they are ignored), and the names
    of all patient folders (including any without a single slice).
    """
    slices: list[SliceFiles] = []
    warnings: list[str] = []
    folders = sorted(_patient_folders(root), key=lambda p: p.name)
    for folder in folders:
        found: dict[int, dict[str, Path]] = {}
        for file in sorted(folder.iterdir()):
            match = SLICE_RE.match(file.name)
            if not match or match["folder"] != folder.name:
                warnings.append(f"{file}: not a slice of {folder.name} (ignored)")
                continue
            kind = "mask" if match["mask"] else "image"
            found.setdefault(int(match["n"]), {})[kind] = file
        for n in sorted(found):
            files = found[n]
            slices.append(
                SliceFiles(patient_of(folder.name), folder.name, n, files.get("image"), files.get("mask"))
            )
    return slices, warnings, [folder.name for folder in folders]


def slices_by_folder(root: Path) -> dict[str, list[SliceFiles]]:
    """The slices under ``root`` grouped by patient folder (folders sorted, slices in order).

    Raises :class:`GliomicsError` when there is not a single slice.
    """
    slices, _, _ = scan_cohort(root)
    if not slices:
        raise GliomicsError(f"{root}: no slices found (expected TCGA_*/<folder>_<n>.tif)")
    grouped: dict[str, list[SliceFiles]] = {}
    for s in slices:
        grouped.setdefault(s.folder, []).append(s)
    return grouped


def read_tif(path: Path) -> np.ndarray:
    """Read a tif, raising :class:`GliomicsError` naming the file on failure."""
    try:
        return tifffile.imread(path)
    except Exception as exc:  # corrupt, truncated or not a tif at all
        raise GliomicsError(f"{path}: unreadable tif ({_short(exc)})") from None


def read_clinical_text(path: Path):
    """Read ``data.csv`` with every cell as text ('' = missing).

    Text keeps non-numeric codes visible to validation instead of letting
    pandas turn a whole column into floats or objects.
    """
    if not path.exists():
        raise GliomicsError(f"{path}: missing (every cohort needs its {CLINICAL_FILE})")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise GliomicsError(f"{path}: unreadable CSV ({_short(exc)})") from None
    return frame.apply(lambda col: col.str.strip())


def read_clinical(path: Path):
    """Read a validated ``data.csv`` with numeric codes (NaN = missing)."""
    frame = read_clinical_text(path)
    for column in frame.columns:
        if column != "Patient":
            frame[column] = pd.to_numeric(frame[column].replace("", None), errors="coerce")
    return frame


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
