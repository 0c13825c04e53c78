"""``gliomics synth`` and ``gliomics ingest``: put a cohort into ``data/raw``."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from gliomics import io
from gliomics.data.kaggle import CLINICAL_FILE, resolve_cohort_dir, scan_cohort
from gliomics.data.synthetic import write_cohort
from gliomics.errors import GliomicsError, ValidationFailed
from gliomics.progress import progress
from gliomics.tracking import dvc_data_hash
from gliomics.validation.cohort import validate_cohort


def _check_target(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise GliomicsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise GliomicsError(f"{out}: not empty; pass --force to replace it")


def synthesize(out: str | Path, *, seed: int, n_patients: int, force: bool = False) -> Path:
    """Write the synthetic demo cohort to ``out`` atomically."""
    out = Path(out)
    _check_target(out, force)
    if n_patients < 1:
        raise GliomicsError(f"synth: n_patients must be at least 1, got {n_patients}")
    with io.atomic_path(out) as tmp, progress("synthesising patients", n_patients) as update:
        write_cohort(tmp, seed=seed, n_patients=n_patients, progress=update)
    return out


def ingest(source: str | Path, dest: str | Path = "data/raw", *, track_with_dvc: bool = True) -> Path:
    """Copy a Kaggle-layout cohort into ``dest`` and version it with ``dvc add``.

    Only the layout's own files are copied (``data.csv`` and the patient
    folders' slices). The copy is validated (:func:`gliomics.validation.cohort.validate_cohort`, the checks of
    ``gliomics validate``) before it replaces ``dest``, atomically: a failed copy or a cohort that fails
    validation leaves the previous cohort as it was, and the error says why.
    """
    root = resolve_cohort_dir(source)
    slices, _, _ = scan_cohort(root)
    if not slices:
        raise GliomicsError(f"{root}: no slices found (expected TCGA_*/<folder>_<n>.tif)")
    if not (root / CLINICAL_FILE).exists():
        raise GliomicsError(f"{root / CLINICAL_FILE}: missing (every cohort needs its {CLINICAL_FILE})")
    dest = Path(dest)
    source, target = root.resolve(), dest.resolve()
    if target == source or source in target.parents or target in source.parents:
        raise GliomicsError(f"{dest}: the destination must not be the source {root}, inside it or above it")
    files = [f for s in slices for f in (s.image, s.mask) if f is not None]
    with io.atomic_path(dest) as tmp:
        with progress("copying slices", len(files)) as update:
            tmp.mkdir()
            shutil.copy2(root / CLINICAL_FILE, tmp / CLINICAL_FILE)
            for i, file in enumerate(files, 1):
                copied = tmp / file.parent.name / file.name
                copied.parent.mkdir(exist_ok=True)
                shutil.copy2(file, copied)
                update(i, len(files))
        with tempfile.TemporaryDirectory(prefix="gliomics-ingest-") as reports:
            try:
                validate_cohort(tmp, Path(reports) / "validate", log_mlflow=False)
            except ValidationFailed as failed:
                first = failed.problems[0] if failed.problems else failed.summary
                raise GliomicsError(
                    f"{root}: not ingested, {dest} is left as it was: validation found {len(failed.problems)} "
                    f"problem(s), first: {str(first).replace(str(tmp), str(root))}. "
                    f"See them all with `gliomics validate --data {root}`") from None
    if track_with_dvc:
        _dvc_track(dest)
    return dest


def _dvc_track(dest: Path) -> None:
    """Record ``dest`` in DVC: update ``data.dvc`` if it tracks ``dest``, else ``dvc add``."""
    tracked = not dvc_data_hash(dest).startswith("untracked:") and Path("data.dvc").exists()
    command = ["dvc", "commit", "--force", "--quiet", "data.dvc"] if tracked else ["dvc", "add", "--quiet", str(dest)]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise GliomicsError("dvc: not found; activate the project environment (make setup)") from None
    except subprocess.CalledProcessError as exc:
        detail = exc.stderr.strip().splitlines()[-1] if exc.stderr.strip() else str(exc)
        raise GliomicsError(f"{' '.join(command)}: {detail}") from None
