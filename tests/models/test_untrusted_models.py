"""Loading a model folder never runs code from it, and a model of the wrong task is refused with one line."""

from __future__ import annotations

import os
import pickle
import shutil

import pytest
import yaml

from gliomics.errors import GliomicsError


class _Marker:
    """Unpickling this creates a file: the proof that a loader unpickled the model's objects."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.mknod, (self.path,))


@pytest.fixture
def crafted(stub_segmenter, tmp_path):
    folder = tmp_path / "crafted"
    shutil.copytree(stub_segmenter, folder)
    marker = tmp_path / "code-ran"
    for name in ("custom_objects.cloudpickle", "model.pkl"):
        (folder / "data" / name).write_bytes(pickle.dumps(_Marker(marker)))
    return folder, marker


def test_a_crafted_pickle_in_a_model_folder_is_never_loaded(crafted):
    from gliomics.models import inference, packaging

    folder, marker = crafted
    for load in (inference.load_model, packaging.load_segmenter):
        model, preprocessing, _ = load(str(folder))
        assert model.output_shape[-1] == 1 and not marker.exists()
    assert os.environ["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] == "false"


def test_a_model_folder_with_code_or_another_flavour_is_refused(crafted):
    from gliomics.models.packaging import load_segmenter

    folder, marker = crafted
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["tensorflow"]["code"] = "code"
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(GliomicsError, match="refused: .*never code or pickled objects.*has a code folder"):
        load_segmenter(str(folder))
    mlmodel["flavors"] = {"python_function": {"loader_module": "evil"}}
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(GliomicsError, match="no tensorflow flavour"):
        load_segmenter(str(folder))
    assert not marker.exists()


def test_a_slice_classifier_is_not_taken_for_a_segmenter():
    from gliomics.models.inference import check_segmenter

    class Classifier:
        output_shape = (None, 1)

    with pytest.raises(GliomicsError, match=r"not a segmenter: output shape \(None, 1\).*--gate"):
        check_segmenter(Classifier(), "models/classifier")

    class Segmenter:
        output_shape = (None, 64, 64, 1)

    check_segmenter(Segmenter(), "ok")  # no error


@pytest.fixture(scope="module")
def stub_classifier(tmp_path_factory) -> str:
    from tests.classifier.conftest import flair_classifier, save_classifier_stub

    return save_classifier_stub(flair_classifier(), tmp_path_factory.mktemp("cls") / "flair")


def test_saved_models_record_their_task(stub_segmenter, stub_classifier):
    # The stubs are saved by the project's own save_segmenter / save_classifier.
    from pathlib import Path

    from gliomics.models.packaging import INPUT_CONTRACT

    for folder, task in ((Path(stub_segmenter), "segmenter"), (Path(stub_classifier), "classifier")):
        metadata = yaml.safe_load((folder / "MLmodel").read_text())["metadata"]["gliomics"]
        assert metadata["task"] == task
        assert metadata["input"]["channels"] == INPUT_CONTRACT["channels"] == ["pre-contrast", "FLAIR", "post-contrast"]
        assert metadata["input"]["image_size"] == metadata["preprocessing"]["image_size"]


def test_a_model_of_the_other_task_is_refused_by_its_metadata(stub_segmenter, stub_classifier, tmp_path):
    from gliomics.models.gate import load_classifier
    from gliomics.models.inference import load_segmenters

    with pytest.raises(GliomicsError, match="not a segmenter: its metadata says slice classifier; pass it with --gate"):
        load_segmenters(str(stub_classifier))
    with pytest.raises(GliomicsError, match="not a slice classifier: its metadata says segmenter; .*--from-segmenter"):
        load_classifier(str(stub_segmenter))
    # The metadata decides even where the shapes would pass: a segmenter folder relabelled as a classifier.
    relabelled = tmp_path / "relabelled"
    shutil.copytree(stub_segmenter, relabelled)
    mlmodel = yaml.safe_load((relabelled / "MLmodel").read_text())
    mlmodel["metadata"]["gliomics"]["task"] = "classifier"
    (relabelled / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(GliomicsError, match="not a segmenter"):
        load_segmenters(str(relabelled))


def test_the_shipped_segmenter_records_its_task():
    from gliomics.registry.shipped import SHIPPED_SEGMENTER

    from tests.conftest import PROJECT

    metadata = yaml.safe_load((PROJECT / SHIPPED_SEGMENTER / "MLmodel").read_text())["metadata"]["gliomics"]
    assert metadata["task"] == "segmenter" and metadata["input"]["image_size"] == 128
