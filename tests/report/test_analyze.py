"""`gliomics analyze`: one patient's folder → report.html, features.csv, masks/; bad input → one line, no OUT."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gliomics.cli import main
from gliomics.errors import GliomicsError
from gliomics.stages.analyze import check_patient_folder, run_analyze
from tests.helpers import STUB_SIZE as SIZE


@pytest.fixture
def patient_dir(small_cohort, tmp_path) -> Path:
    """One synthetic patient's folder, images only (as a new patient arrives)."""
    source = sorted(p for p in small_cohort.iterdir() if p.is_dir())[0]
    target = tmp_path / "incoming" / source.name
    target.mkdir(parents=True)
    for image in source.glob("*.tif"):
        if not image.name.endswith("_mask.tif"):
            shutil.copy2(image, target / image.name)
    return target


def _args(patient_dir, out, model, reports: Path, cohort: Path, *extra):
    return ["analyze", "--input", str(patient_dir), "--out", str(out), "--model", str(model),
            "--reference", str(reports / "features" / "features_truth.csv"),
            "--associations", str(reports / "associations" / "truth"), "--clinical", str(cohort / "data.csv"),
            "--splits", str(reports / "split" / "splits.csv"), *extra]


def test_analyze_writes_report_features_and_masks(patient_dir, stub_segmenter, full_reports, small_cohort,
                                                  tmp_path, capsys):
    import tifffile

    out = tmp_path / "out"
    assert main(_args(patient_dir, out, stub_segmenter, full_reports, small_cohort)) == 0
    assert sorted(p.name for p in out.iterdir()) == [".gliomics-output", "features.csv", "masks", "report.html"]
    page = (out / "report.html").read_text()
    assert "development patients (training and validation folds of" in page

    n_slices = len(list(patient_dir.glob("*.tif")))
    masks = sorted((out / "masks").glob("*_mask.tif"))
    assert len(masks) == n_slices
    volume = np.stack([tifffile.imread(m) for m in masks])
    assert volume.shape[1:] == (256, 256) and volume.dtype == np.uint8 and set(np.unique(volume)) <= {0, 255}
    assert volume.any()  # the FLAIR stub finds the bright synthetic tumour

    features = pd.read_csv(out / "features.csv")
    assert len(features) == 1 and features.loc[0, "folder"] == patient_dir.name
    assert features.loc[0, "status"] == "ok" and features.loc[0, "tumour_voxels"] == int((volume > 0).sum())
    reference = pd.read_csv(full_reports / "features" / "features_truth.csv")
    assert set(reference.columns) - {"histological_type"} <= set(features.columns)

    page = (out / "report.html").read_text(encoding="utf-8")
    for title in ("Patient", "Segmentation", "Features", "What the cohort analysis says"):
        assert f"<h2>{title}</h2>" in page
    assert page.count("data:image/png;base64,") == 3  # largest slices, 3D volume, feature positions
    assert "percentile" in page and "among all patients of the reference cohort" in page  # the planted association
    assert "not a diagnosis" in page
    stdout = capsys.readouterr().out
    assert stdout.startswith(f"analyze: {patient_dir.name}: {n_slices} slices")


def test_analyze_without_reference_still_reports(patient_dir, stub_segmenter, tmp_path):
    from gliomics.config import params_from_dict
    from gliomics.stages.analyze import run_analyze

    out = tmp_path / "out"
    summary = run_analyze(patient_dir, out, params_from_dict({}), model_uri=stub_segmenter,
                          reference_csv=tmp_path / "none.csv", associations=tmp_path / "none")
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "The reference cohort not available yet" in page and summary["tumour_voxels"] > 0
    assert set(summary["timings"]) == {"checking input", "loading model", "reading slices", "segmenting",
                                       "features", "report"}


def test_gate_that_sees_no_tumour_empties_the_masks(patient_dir, stub_segmenter, tmp_path):
    import tensorflow as tf

    from gliomics.config import params_from_dict
    from gliomics.stages.analyze import run_analyze

    inputs = tf.keras.Input((SIZE, SIZE, 3))
    pooled = tf.keras.layers.GlobalAveragePooling2D()(inputs)
    dense = tf.keras.layers.Dense(1, activation="sigmoid")
    model = tf.keras.Model(inputs, dense(pooled))
    dense.set_weights([np.zeros((3, 1), np.float32), np.array([-10.0], np.float32)])  # p(tumour) ~ 0
    from tests.classifier.conftest import save_classifier_stub

    gate = save_classifier_stub(model, tmp_path / "gate", size=SIZE)

    summary = run_analyze(patient_dir, tmp_path / "out", params_from_dict({}), model_uri=stub_segmenter,
                          gate_uri=str(gate), reference_csv=tmp_path / "none.csv")
    assert summary["n_gated_out"] == summary["n_slices"] and summary["tumour_voxels"] == 0
    assert pd.read_csv(tmp_path / "out" / "features.csv").loc[0, "status"] == "empty mask"


def _empty(d: Path) -> None:
    for f in d.iterdir():
        f.unlink()


def _write_small_image(d: Path) -> None:
    import tifffile

    name = sorted(d.glob("*.tif"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))[2].name
    tifffile.imwrite(d / name, np.zeros((128, 128, 3), np.uint8))


BAD_INPUTS = {
    "empty folder": (_empty, "empty folder"),
    "non-tif file": (lambda d: (d / "notes.txt").write_text("x"), "not a .tif slice: notes.txt"),
    "wrong image size": (_write_small_image, "image is 128x128x3 uint8, expected 256x256x3"),
    "gap in slice numbers": (lambda d: next(d.glob("*_3.tif")).unlink(), "gaps in the slice numbers: missing 3"),
    "two patients": (lambda d: shutil.copy2(next(d.glob("*_1.tif")), d / "TCGA_ZZ_9999_20000101_1.tif"),
                     "more than one patient"),
}


@pytest.mark.parametrize("problem", sorted(BAD_INPUTS))
def test_bad_input_gives_one_line_and_no_output(problem, patient_dir, stub_segmenter, tmp_path, capsys):
    damage, message = BAD_INPUTS[problem]
    damage(patient_dir)
    out = tmp_path / "out"
    assert main(["analyze", "--input", str(patient_dir), "--out", str(out), "--model", stub_segmenter]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("gliomics analyze: error:")
    assert not out.exists() and not list(tmp_path.glob(".out.*"))


def test_no_champion_and_no_shipped_model(patient_dir, tmp_path, capsys, monkeypatch):
    import gliomics.registry.shipped as shipped

    monkeypatch.setattr(shipped, "SHIPPED_SEGMENTER", tmp_path / "absent")
    out = tmp_path / "out"
    assert main(["analyze", "--input", str(patient_dir), "--out", str(out)]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert "no gliomics-segmenter champion is registered and the shipped segmenter" in line
    assert not out.exists()


def test_no_champion_uses_the_shipped_model_and_says_so(patient_dir, tmp_path, capsys):
    from gliomics.registry.shipped import SHIPPED_SEGMENTER, locate

    if not (locate(SHIPPED_SEGMENTER) / "MLmodel").is_file():
        pytest.skip("the shipped segmenter is not in this checkout")
    out = tmp_path / "out"
    assert main(["analyze", "--input", str(patient_dir), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lgg-segmenter: the shipped segmenter trained on the real TCGA-LGG cohort (no champion" in printed
    assert "why this model" in (out / "report.html").read_text()


def test_failure_after_segmentation_leaves_no_partial_output(patient_dir, stub_segmenter, tmp_path, monkeypatch):
    from gliomics.config import params_from_dict
    from gliomics.stages import analyze

    out = tmp_path / "out"
    out.mkdir()
    (out / "report.html").write_text("an earlier analysis")

    def broken(*args, **kwargs):
        raise GliomicsError("disk full")

    monkeypatch.setattr("gliomics.stages.analyze.write_mask", broken)
    with pytest.raises(GliomicsError, match="disk full"):
        analyze.run_analyze(patient_dir, out, params_from_dict({}), model_uri=stub_segmenter,
                            reference_csv=tmp_path / "none.csv")
    assert sorted(p.name for p in out.iterdir()) == ["report.html"]
    assert (out / "report.html").read_text() == "an earlier analysis"  # the earlier output is untouched
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")] == []


def test_folder_checks_accept_masks_and_refuse_cohorts_and_foreign_output(patient_dir, small_cohort, tmp_path):
    from gliomics.stages.analyze import check_out_dir

    source = next(p for p in small_cohort.iterdir() if p.name == patient_dir.name)
    shutil.copy2(next(source.glob("*_1_mask.tif")), patient_dir)
    folder, slices = check_patient_folder(patient_dir)
    assert folder == patient_dir.name and [n for n, _ in slices] == list(range(1, len(slices) + 1))
    with pytest.raises(GliomicsError, match="not a cohort"):
        check_patient_folder(small_cohort)
    with pytest.raises(GliomicsError, match="no such folder"):
        check_patient_folder(tmp_path / "absent")
    other = tmp_path / "home"
    other.mkdir()
    (other / "thesis.docx").write_text("precious")
    with pytest.raises(GliomicsError, match="not an earlier analyze output"):
        check_out_dir(other, patient_dir)
    with pytest.raises(GliomicsError, match="must not be the input"):
        check_out_dir(patient_dir / "out", patient_dir)


def test_analyze_a_real_patient(real_cohort, stub_segmenter, full_reports, tmp_path):
    """A real Kaggle patient folder (restored from ../shared; skipped when absent) goes through as well."""
    source = sorted(p for p in real_cohort.iterdir() if p.is_dir())[0]
    patient = tmp_path / source.name
    patient.mkdir()
    for image in source.glob("*.tif"):
        if not image.name.endswith("_mask.tif"):
            shutil.copy2(image, patient / image.name)
    out = tmp_path / "out"
    assert main(_args(patient, out, stub_segmenter, full_reports, real_cohort)) == 0
    features = pd.read_csv(out / "features.csv")
    assert features.loc[0, "folder"] == source.name
    assert len(list((out / "masks").glob("*_mask.tif"))) == len(list(patient.glob("*.tif")))
    assert "<h2>Features</h2>" in (out / "report.html").read_text(encoding="utf-8")


def test_reference_is_the_models_development_patients(tmp_path):
    """The percentiles compare with the training + validation patients, never the internal test ones."""
    import pandas as pd

    from gliomics.errors import GliomicsError
    from gliomics.stages.analyze import development_patients

    reference = pd.DataFrame({"patient": ["A", "B", "C", "D"], "solidity": [0.1, 0.2, 0.3, 0.4]})
    splits = tmp_path / "splits.csv"
    pd.DataFrame({"patient": ["A", "B", "C", "D"], "part": ["fold0", "fold1", "test", "test"]}).to_csv(splits, index=False)
    kept, scope = development_patients(reference, splits)
    assert list(kept["patient"]) == ["A", "B"] and "training and validation folds" in scope
    everyone, scope = development_patients(reference, None)
    assert len(everyone) == 4 and scope == "all patients of the table"
    pd.DataFrame({"patient": ["X"], "part": ["fold0"]}).to_csv(splits, index=False)
    with pytest.raises(GliomicsError, match="none of its training/validation patients"):
        development_patients(reference, splits)
    splits.write_text("nothing,here\n1,2\n")
    with pytest.raises(GliomicsError, match="not a splits table"):
        development_patients(reference, splits)


def test_the_report_names_no_absolute_path_of_this_machine(patient_dir, stub_segmenter, tmp_path):
    """A shared report must not carry the machine's folders: names (or project-relative paths) only."""
    from gliomics.config import params_from_dict

    out = tmp_path / "out"
    run_analyze(patient_dir, out, params_from_dict({}), model_uri=stub_segmenter,
                reference_csv=tmp_path / "absent" / "features_truth.csv", associations=tmp_path / "absent")
    page = (out / "report.html").read_text()
    for folder in (str(tmp_path), str(patient_dir.parent), str(Path(stub_segmenter).parent)):
        assert folder not in page
    assert patient_dir.name in page and Path(stub_segmenter).name in page


# --------------------------------------------------------------------- a folder of patients
@pytest.fixture
def incoming(small_cohort, tmp_path) -> Path:
    """Three patients' image folders (no masks) plus a broken one: a 64x64 slice among 256x256 ones."""
    root = tmp_path / "incoming"
    for source in sorted(p for p in small_cohort.iterdir() if p.is_dir())[:3]:
        (root / source.name).mkdir(parents=True)
        for image in source.glob("*.tif"):
            if not image.name.endswith("_mask.tif"):
                shutil.copy2(image, root / source.name / image.name)
    broken = root / "TCGA_ZZ_0000_20000101"
    shutil.copytree(root / sorted(p.name for p in root.iterdir())[0], broken)
    for image in broken.iterdir():
        image.rename(broken / image.name.replace(image.name.rsplit("_", 1)[0], broken.name))
    _write_small_image(broken)
    (root / "data.csv").write_text("not a patient\n")  # files beside the folders are ignored
    return root


def test_batch_analyzes_every_patient_and_reports_the_broken_one(incoming, stub_segmenter, full_reports,
                                                                  small_cohort, tmp_path, capsys):
    out = tmp_path / "batch"
    assert main(_args(incoming, out, stub_segmenter, full_reports, small_cohort)) == 1  # one patient failed
    patients = sorted(p.name for p in incoming.iterdir() if p.is_dir())
    good = [name for name in patients if name != "TCGA_ZZ_0000_20000101"]
    assert sorted(p.name for p in out.iterdir()) == sorted([*good, "index.csv", "index.html"])  # exit 1: unmarked
    index = pd.read_csv(out / "index.csv", keep_default_na=False)
    assert list(index["folder"]) == patients
    failed = index.set_index("folder").loc["TCGA_ZZ_0000_20000101"]
    assert failed["status"] == "failed" and "expected 256x256x3 uint8" in failed["error"]

    # Each good patient: the same files and numbers as a single-patient run (the model is loaded once).
    for name in good:
        single = tmp_path / "single" / name
        assert main(_args(incoming / name, single, stub_segmenter, full_reports, small_cohort)) == 0
        assert sorted(p.name for p in (out / name).iterdir()) == ["features.csv", "masks", "report.html"]
        ours, theirs = pd.read_csv(out / name / "features.csv"), pd.read_csv(single / "features.csv")
        pd.testing.assert_frame_equal(ours, theirs)
        row = index.set_index("folder").loc[name]
        assert row["status"] == "ok" and float(row["volume_3d"]) == pytest.approx(ours.loc[0, "volume_3d"])
        assert 0 <= float(row["pct_solidity"]) <= 100

    page = (out / "index.html").read_text(encoding="utf-8")
    for name in good:
        assert f'href="{name}/report.html"' in page
    assert "<h2>Failed</h2>" in page and "TCGA_ZZ_0000_20000101" in page
    assert "/tmp/" not in page and str(tmp_path) not in page  # no machine paths in a shareable page
    err = capsys.readouterr().err
    assert "analyze: TCGA_ZZ_0000_20000101: failed:" in err and "1 failed (TCGA_ZZ_0000_20000101)" in err


def test_batch_from_a_list_file_and_its_errors(incoming, stub_segmenter, tmp_path, capsys):
    from gliomics.config import params_from_dict
    from gliomics.stages.analyze import patient_folders, run_analyze_batch

    names = sorted(p.name for p in incoming.iterdir() if p.is_dir())[:2]
    listing = tmp_path / "patients.txt"
    listing.write_text(f"# two patients\n{incoming.name}/{names[0]}\n\n{incoming / names[1]}\n")
    assert [p.name for p in patient_folders(listing)] == names
    summary = run_analyze_batch(listing, tmp_path / "out", params_from_dict({}), model_uri=stub_segmenter,
                                reference_csv=tmp_path / "none.csv")
    assert summary["n_patients"] == 2 and summary["n_failed"] == 0
    assert "pct_solidity" not in pd.read_csv(tmp_path / "out" / "index.csv")  # no reference, no percentiles

    twice = tmp_path / "twice.txt"
    twice.write_text(f"{incoming / names[0]}\n{incoming / names[0]}\n")
    with pytest.raises(GliomicsError, match="two patient folders named"):
        patient_folders(twice)
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(GliomicsError, match="lists no patient folder"):
        patient_folders(tmp_path / "empty.txt")
    for out in (incoming, incoming / names[0] / "out", tmp_path):  # an input, inside one, above one
        with pytest.raises(GliomicsError, match="must not be an input folder"):
            run_analyze_batch(incoming, out, params_from_dict({}), model_uri=stub_segmenter)
    unrelated = tmp_path / "unrelated"
    unrelated.mkdir()
    (unrelated / "notes.txt").write_text("keep me")
    with pytest.raises(GliomicsError, match="not an earlier batch analyze output"):
        run_analyze_batch(incoming, unrelated, params_from_dict({}), model_uri=stub_segmenter)
    assert (unrelated / "notes.txt").read_text() == "keep me"


def test_a_synthetic_reference_cohort_is_said(patient_dir, stub_segmenter, full_reports, small_cohort, tmp_path):
    from gliomics.config import params_from_dict
    from gliomics.stages.analyze import SYNTHETIC_REFERENCE

    options = dict(model_uri=stub_segmenter, reference_csv=full_reports / "features" / "features_truth.csv",
                   associations=full_reports / "associations" / "truth", clinical_csv=small_cohort / "data.csv")
    demo = run_analyze(patient_dir, tmp_path / "demo", params_from_dict({"profile": "demo"}), **options)
    assert demo["reference_note"] == SYNTHETIC_REFERENCE
    assert "synthetic demo cohort" in (tmp_path / "demo" / "report.html").read_text(encoding="utf-8")
    real = run_analyze(patient_dir, tmp_path / "cpu", params_from_dict({"profile": "cpu"}), **options)
    assert real["reference_note"] is None
    assert "synthetic demo cohort" not in (tmp_path / "cpu" / "report.html").read_text(encoding="utf-8")
