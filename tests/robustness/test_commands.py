"""Bad parameters, missing earlier stages, unwritable outputs, wrong tables and wrong models, through the CLI:
each is one line (exit 2), and no file of the project changes."""

from __future__ import annotations

import shutil

import pytest


from .conftest import refused, tree


@pytest.mark.parametrize("params,message", [
    ("profle: demo\n", "unknown section 'profle' (did you mean 'profile'?)"),
    ("", "empty"),
    ("profile: demo\ntrain:\n  demo:\n    loss: bce_dicee\n", "bce_dicee"),
    ("profile: nope\n", "profile must be one of"),
], ids=["typo-section", "empty-file", "typo-loss", "unknown-profile"])
def test_bad_params_file(project, capsys, params, message):
    (project / "bad.yaml").write_text(params)
    refused(project, capsys, ["train", "--params", "bad.yaml", "--no-mlflow"], message)


def test_train_before_split_says_which_stage_to_run(project, capsys):
    from tests.conftest import PROJECT

    shutil.copy(PROJECT / "dvc.yaml", project / "dvc.yaml")  # the hint comes from the pipeline's outputs
    refused(project, capsys, ["train", "--no-mlflow"],
            "reports/split/splits.csv: No such file or directory; written by the DVC stage 'split': "
            "run `dvc repro split`")


def test_an_output_below_a_file_is_one_line(project, capsys):
    (project / "afile").write_text("x")
    refused(project, capsys, ["validate", "--out", "afile/validate", "--no-mlflow"], "afile")


@pytest.mark.parametrize("content,message", [
    ("\x00\x01garbage\xff", "not a CSV table"),
    ("a,b\n1,2\n", "no column patient"),
], ids=["binary", "other-table"])
def test_analyze_with_a_garbage_reference_table(project, capsys, stub_segmenter, content, message):
    (project / "ref.csv").write_bytes(content.encode("latin-1"))
    patient = sorted(p for p in (project / "data" / "raw").iterdir() if p.is_dir())[0]
    incoming = project / "incoming" / patient.name
    incoming.mkdir(parents=True)
    for image in patient.glob("*.tif"):
        if not image.name.endswith("_mask.tif"):
            shutil.copy2(image, incoming / image.name)
    refused(project, capsys, ["analyze", "--input", str(incoming), "--out", "out", "--model", stub_segmenter,
                              "--reference", "ref.csv"], message)
    assert not (project / "out").exists()


def test_a_slice_classifier_is_no_segmenter(project, capsys, tmp_path):
    from tests.classifier.conftest import flair_classifier, save_classifier_stub

    classifier = save_classifier_stub(flair_classifier(), tmp_path / "classifier")
    capsys.readouterr()  # MLflow's warnings while saving the stub
    refused(project, capsys, ["segment", "--input", "data/raw", "--out", "predicted", "--model", classifier,
                              "--no-mlflow"], "not a segmenter")
    assert not (project / "predicted").exists()


def test_a_model_folder_that_is_no_model(project, capsys):
    (project / "notamodel").mkdir()
    (project / "notamodel" / "MLmodel").write_text("flavors: {python_function: {loader_module: evil}}\n")
    refused(project, capsys, ["segment", "--input", "data/raw", "--out", "predicted", "--model", "notamodel",
                              "--no-mlflow"], "notamodel")
    assert tree(project / "notamodel") == {"MLmodel": tree(project / "notamodel")["MLmodel"]}
