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
