"""Missing MRI sequences: a pre- or post-contrast channel that is a copy of FLAIR, per slice and per patient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from gliomics.data.manifest import (SEQUENCE_GROUPS, channels_copied_from_flair, patient_sequence_group,
                                    sequence_group)


def _patient(n=6, pre_copy=False, post_copy=False, seed=0):
    images = np.random.default_rng(seed).integers(0, 255, size=(n, 8, 8, 3), dtype=np.uint8)
    if pre_copy:
        images[..., 0] = images[..., 1]
    if post_copy:
        images[..., 2] = images[..., 1]
    return images


def test_slice_flags():
    image = _patient(1)[0]
    assert channels_copied_from_flair(image) == (False, False)
    image[..., 2] = image[..., 1]
    assert channels_copied_from_flair(image) == (False, True)
    assert channels_copied_from_flair(np.zeros((8, 8, 3), np.uint8)) == (True, True)  # an empty slice
    assert channels_copied_from_flair(np.zeros((8, 8), np.uint8)) == (False, False)  # not a 3-channel slice


def test_patient_groups():
    assert patient_sequence_group(_patient()) == "all sequences"
    assert patient_sequence_group(_patient(post_copy=True)) == "no post-contrast"
    assert patient_sequence_group(_patient(pre_copy=True)) == "no pre-contrast"
    assert patient_sequence_group(_patient(pre_copy=True, post_copy=True)) == "FLAIR only"
    # A few blank slices (identical on every channel) do not make a patient FLAIR-only.
    images = _patient(10)
    images[:3] = 0
    assert patient_sequence_group(images) == "all sequences"
    assert sequence_group([], []) == SEQUENCE_GROUPS[0]


def test_manifest_and_evaluate_report_the_groups(small_cohort, tmp_path):
    """A cohort copy with one FLAIR-only patient: the manifest flags it; evaluate scores it as its own group."""
    import shutil

    import tifffile

    from gliomics.data.kaggle import slices_by_folder
    from gliomics.data.manifest import build_manifest, patient_sequences

    root = tmp_path / "kaggle_3m"
    shutil.copytree(small_cohort, root)
    by_folder = slices_by_folder(root)
    folder = sorted(by_folder)[0]
    for s in by_folder[folder]:
        image = tifffile.imread(s.image)
        image[..., 0] = image[..., 2] = image[..., 1]
        tifffile.imwrite(s.image, image)
    manifest = build_manifest([s for ss in slices_by_folder(root).values() for s in ss], root)
    groups = patient_sequences(manifest).set_index("patient")["sequences"]
    patient = by_folder[folder][0].patient
    assert groups[patient] == "FLAIR only" and (groups.drop(patient) == "all sequences").all()
    assert manifest.loc[manifest["patient"] == patient, "pre_is_flair"].all()

    from gliomics.models.preprocessing import Preprocessing
    from gliomics.stages.evaluate import run_evaluate
    from tests.helpers import STUB_SIZE as SIZE, flair_stub, save_local

    model = save_local(flair_stub(), tmp_path / "stub", Preprocessing(image_size=SIZE))
    summary = run_evaluate(root, str(model), tmp_path / "eval", log_mlflow=False)
    table = pd.read_csv(tmp_path / "eval" / "per_patient.csv").set_index("patient")
    assert table.loc[patient, "sequences"] == "FLAIR only"
    assert set(summary["by_sequences"]) == {"FLAIR only", "all sequences"}
    assert summary["by_sequences"]["FLAIR only"]["n_patients"] == 1
    assert summary["by_sequences"]["FLAIR only"]["mean_dice_3d"] == pytest.approx(table.loc[patient, "dice_3d"])
