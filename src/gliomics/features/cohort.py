"""The features of every patient of a cohort, one worker process per core.

The workers come from a fork server: a fresh interpreter that has imported only this module (NumPy,
scikit-image, OpenCV) and forks each worker from that clean state. Forking the calling process instead
would copy whatever threads it holds (TensorFlow's, or those of libraries the stage imported), and a child
may then wait forever on a lock that one of those threads held at the fork, or abort.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from gliomics.data.slices import read_images, read_masks
from gliomics.errors import GliomicsError
from gliomics.features.patient import patient_features


def load_patient(slices) -> tuple[np.ndarray, np.ndarray]:
    """Stack one patient's images ``(n, 256, 256, 3)`` uint8 and masks ``(n, 256, 256)`` bool.

    Every slice is read and checked by :mod:`gliomics.data.slices`, tumour-free
    ones too (about 0.2 ms a slice), so that ``features`` refuses exactly the
    slices ``evaluate``, ``segment`` and ``analyze`` refuse (images first, then
    masks, as ``evaluate``). Only tumour slices' pixels enter any feature.
    """
    missing = [s for s in slices if s.mask is None or s.image is None]
    if missing:
        s = missing[0]
        raise GliomicsError(f"{s.image or s.mask}: slice {s.slice} of {s.folder} has no "
                            f"{'mask' if s.mask is None else 'image'}")
    images = read_images(s.image for s in slices)
    masks = read_masks(s.mask for s in slices)
    return images, masks


def patient_row(job) -> dict:
    """``{patient, folder, <feature>: value, ...}`` of one patient; ``job`` is ``(slices, settings)``."""
    slices, settings = job
    images, masks = load_patient(slices)
    return {"patient": slices[0].patient, "folder": slices[0].folder, **patient_features(images, masks, **settings)}


def cohort_rows(by_folder: dict, settings: dict, progress_callback=None, *, workers: int = 1) -> list[dict]:
    """:func:`patient_row` of each folder of ``by_folder`` (sorted by name), on ``workers`` processes.

    A worker's GliomicsError (a bad slice) comes back pickled as itself: one line for the CLI; the patients
    not yet started are then cancelled rather than computed for nothing.
    """
    jobs = [(by_folder[folder], settings) for folder in sorted(by_folder)]
    workers = max(1, min(workers, len(jobs)))
    if workers == 1:
        return _collect(map(patient_row, jobs), len(jobs), progress_callback)
    # Processes, not threads: the feature code makes many small NumPy calls that hold the GIL.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        try:
            return _collect(pool.map(patient_row, jobs), len(jobs), progress_callback)
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise


def _collect(rows, n: int, progress_callback) -> list[dict]:
    """The rows of an iterator of ``n`` patients, reporting each to ``progress_callback(i, n)``."""
    collected = []
    for i, row in enumerate(rows, 1):
        collected.append(row)
        if progress_callback:
            progress_callback(i, n)
    return collected
