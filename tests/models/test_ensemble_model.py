"""One model folder that averages several segmenters (``gliomics ensemble``)."""

from __future__ import annotations

import numpy as np
import pytest

import gliomics  # noqa: F401  (tf-keras 2)
from gliomics.errors import GliomicsError

CONFIG = {"arch": "plain_unet", "base_filters": 4, "depth": 2, "input_shape": [32, 32, 3]}


@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two small plain U-Nets with different random weights, saved as trained models are (bf16 like training)."""
    import tensorflow as tf

    from gliomics.models import build_under_policy
    from gliomics.models.preprocessing import Preprocessing
    from gliomics.training.export import save_segmenter

    root = tmp_path_factory.mktemp("members")
    folders = []
    for seed in (0, 1):
        tf.keras.utils.set_random_seed(seed)
        model = build_under_policy(CONFIG, "mixed_bfloat16")
        folder = root / f"seed{seed}"
        save_segmenter(model, Preprocessing(image_size=32, threshold=0.4 + 0.1 * seed), CONFIG, folder,
                       profile="cpu", seed=seed)
        folders.append(folder)
    return folders


def test_the_packed_model_outputs_the_mean_of_its_members(members, tmp_path):
    from gliomics.models.inference import AveragedSegmenter, load_model, read_keras_file
    from gliomics.training.export import pack_ensemble

    storage = pack_ensemble(members, tmp_path / "ens", half=False, release="test")
    assert storage["folder_bytes"] > 0 and not list((tmp_path / "ens").rglob("*.cloudpickle"))
    packed, preprocessing, metadata = load_model(str(tmp_path / "ens"))
    # The fast loader read it (not the library fallback), and the first member's threshold is kept.
    assert read_keras_file(tmp_path / "ens" / "data" / "model.keras") is not None
    assert preprocessing.threshold == pytest.approx(0.4) and metadata["release"] == "test"
    assert metadata["model_config"]["arch"] == "ensemble" and len(metadata["model_config"]["members"]) == 2
    assert [m["seed"] for m in metadata["members"]] == [0, 1]
    assert [m["source"] for m in metadata["members"]] == [str(f) for f in members]
    assert metadata["compute"] == "float32" and metadata["stored_weights"] == "float32"

    loaded = [load_model(str(f))[0] for f in members]
    x = np.random.default_rng(0).normal(size=(3, 32, 32, 3)).astype(np.float32)
    outputs = [np.asarray(m(x), dtype=np.float32) for m in loaded]
    assert not np.allclose(outputs[0], outputs[1], atol=1e-3)  # two different members
    expected = np.asarray(AveragedSegmenter(loaded)(x))  # the averaging the commands do for --model A B
    # The members computed in bf16, the packed model in float32: equal up to bf16 rounding.
    np.testing.assert_allclose(np.asarray(packed(x)), expected, atol=2e-2)
    np.testing.assert_allclose(np.asarray(packed(x)), np.mean(outputs, axis=0), atol=2e-2)
    assert packed.output_shape == (None, 32, 32, 1)


def test_packed_members_are_exact_copies_and_16_bit_storage_rounds_them(members, tmp_path):
    from gliomics.models.ensemble import member_name
    from gliomics.models.inference import load_model
    from gliomics.training.export import pack_ensemble

    pack_ensemble(members, tmp_path / "ens16")
    packed, _, metadata = load_model(str(tmp_path / "ens16"))
    assert metadata["stored_weights"] == "float16"
    for index, folder in enumerate(members):
        original = load_model(str(folder))[0].get_weights()
        copied = packed.get_layer(member_name(index)).get_weights()
        assert len(original) == len(copied)
        for a, b in zip(original, copied):
            np.testing.assert_array_equal(b, a.astype(np.float16).astype(np.float32))


def test_packing_refuses_one_model_mixed_preprocessing_classifiers_and_nesting(members, tmp_path):
    from gliomics.models import build_from_config
    from gliomics.models.preprocessing import Preprocessing
    from gliomics.training.export import pack_ensemble, save_classifier, save_segmenter

    with pytest.raises(GliomicsError, match="at least two"):
        pack_ensemble(members[:1], tmp_path / "one")
    other = build_from_config({**CONFIG, "input_shape": [64, 64, 3]})
    save_segmenter(other, Preprocessing(image_size=64), {**CONFIG, "input_shape": [64, 64, 3]}, tmp_path / "big")
    with pytest.raises(GliomicsError, match="prepares its input differently.*image_size"):
        pack_ensemble([members[0], tmp_path / "big"], tmp_path / "mixed")
    classifier_config = {"arch": "resnet_classifier", "depth": 50, "base_filters": 4, "stage_blocks": [1, 1, 1, 1],
                         "input_shape": [32, 32, 3]}
    save_classifier(build_from_config(classifier_config), Preprocessing(image_size=32), classifier_config,
                    tmp_path / "cls", min_area_px=1)
    with pytest.raises(GliomicsError, match="not a segmenter"):
        pack_ensemble([members[0], tmp_path / "cls"], tmp_path / "c")
    pack_ensemble(members, tmp_path / "ens", half=False)
    with pytest.raises(GliomicsError, match="already an ensemble"):
        pack_ensemble([tmp_path / "ens", members[0]], tmp_path / "nested")
    assert not (tmp_path / "mixed").exists() and not (tmp_path / "nested").exists()


def test_an_ensemble_config_needs_two_single_members():
    from gliomics.models import build_from_config
    from gliomics.models.options import ModelConfigError

    with pytest.raises(ModelConfigError, match="at least two"):
        build_from_config({"arch": "ensemble", "members": [CONFIG]})
    with pytest.raises(ModelConfigError, match="no nested"):
        build_from_config({"arch": "ensemble", "members": [CONFIG, {"arch": "ensemble", "members": [CONFIG, CONFIG]}]})
    with pytest.raises(ModelConfigError, match="different input shapes"):
        build_from_config({"arch": "ensemble", "members": [CONFIG, {**CONFIG, "input_shape": [64, 64, 3]}]})


def test_the_ensemble_command_packs_and_segments_like_one_model(members, tmp_path, capsys):
    from gliomics.cli import main
    from gliomics.models.inference import load_model

    assert main(["ensemble", "--model", str(members[0]), str(members[1]), "--out", str(tmp_path / "packed")]) == 0
    assert "the mean of 2 segmenters" in capsys.readouterr().out
    packed, _, metadata = load_model(str(tmp_path / "packed"))
    assert metadata["stored_weights"] == "float16" and packed.output_shape == (None, 32, 32, 1)
    # The output may not be one of its inputs.
    assert main(["ensemble", "--model", str(members[0]), str(members[1]), "--out", str(members[0])]) != 0
    assert "MLmodel" in {p.name for p in members[0].iterdir()}
