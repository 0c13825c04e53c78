"""Flip test-time augmentation and ensembles of segmenters (mean probability)."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.errors import GliomicsError
from gliomics.models.inference import AveragedSegmenter, describe_models


class Ramp:
    """A deliberately non-symmetric "segmenter": channel 1 times a left-to-right ramp (not mirror-equivariant)."""

    input_shape = (None, 8, 8, 3)

    def __init__(self, scale: float = 1.0):
        self.scale = scale

    def __call__(self, batch, training=False):
        ramp = np.linspace(0.0, 1.0, batch.shape[2], dtype=np.float32)[None, None, :]
        return (self.scale * batch[..., 1] * ramp)[..., None]


def test_tta_averages_the_prediction_and_the_mirrored_prediction_of_the_mirrored_input():
    x = np.random.default_rng(0).random((2, 8, 8, 3), dtype=np.float32)
    model = Ramp()
    expected = (model(x) + model(x[:, :, ::-1])[:, :, ::-1]) / 2
    np.testing.assert_array_equal(AveragedSegmenter([model], tta=True)(x), expected)
    # Without TTA one model is itself.
    np.testing.assert_array_equal(AveragedSegmenter([model])(x), model(x))


def test_tta_is_exactly_mirror_equivariant_and_exact_on_a_symmetric_input():
    x = np.random.default_rng(1).random((3, 8, 8, 3), dtype=np.float32)
    tta = AveragedSegmenter([Ramp()], tta=True)
    np.testing.assert_array_equal(tta(x[:, :, ::-1]), tta(x)[:, :, ::-1])
    symmetric = x + x[:, :, ::-1]
    out = tta(symmetric)
    np.testing.assert_array_equal(out, out[:, :, ::-1])  # a symmetric input gets a symmetric mask
    # ...equal to the mean of the model and its mirror image (the model itself is not symmetric).
    np.testing.assert_array_equal(out, (Ramp()(symmetric) + Ramp()(symmetric)[:, :, ::-1]) / 2)
    assert not np.array_equal(Ramp()(symmetric), out)


def test_an_ensemble_is_the_mean_of_its_members():
    x = np.random.default_rng(2).random((2, 8, 8, 3), dtype=np.float32)
    members = [Ramp(0.2), Ramp(0.5), Ramp(1.1)]
    np.testing.assert_allclose(AveragedSegmenter(members)(x), np.mean([m(x) for m in members], axis=0), rtol=1e-6)
    with_tta = AveragedSegmenter(members, tta=True)(x)
    manual = np.mean([v for m in members for v in (m(x), m(x[:, :, ::-1])[:, :, ::-1])], axis=0)
    np.testing.assert_allclose(with_tta, manual, rtol=1e-6)
    assert AveragedSegmenter(members).input_shape == (None, 8, 8, 3)
    with pytest.raises(GliomicsError, match="at least one"):
        AveragedSegmenter([])
    assert describe_models(["a", "b"]) == "a + b" and describe_models("a") == "a"


@pytest.mark.slow  # an end-to-end stage run: `make test`, not `make test-fast`
def test_ensembles_and_tta_through_the_stages(small_cohort, tmp_path):
    """evaluate with two models (the same one twice = itself) and TTA; members of another preprocessing refused."""
    import gliomics  # noqa: F401
    from gliomics.config import TrainParams
    from gliomics.stages.evaluate import run_evaluate
    from gliomics.stages.train import run_train
    from tests.helpers import TINY_FIT, validate_and_split

    manifest, splits, _ = validate_and_split(small_cohort, tmp_path, ["fold0", "fold1", "fold1", "fold1"])
    params = TrainParams(**{**TINY_FIT, "model": {"arch": "plain_unet", "base_filters": 4, "depth": 2},
                            "steps_per_epoch": 2, "epochs": 1})
    run_train(small_cohort, manifest, splits, params, out_dir=tmp_path / "m32", store_dir=tmp_path / "a32",
              checkpoint_dir=tmp_path / "c32", reports_dir=tmp_path / "r32", log_mlflow=False)
    one = run_evaluate(small_cohort, str(tmp_path / "m32"), tmp_path / "e1", log_mlflow=False)
    two = run_evaluate(small_cohort, [str(tmp_path / "m32")] * 2, tmp_path / "e2", log_mlflow=False)
    assert two["model_uri"] == f"{tmp_path / 'm32'} + {tmp_path / 'm32'}"
    assert two["mean_dice_3d"] == pytest.approx(one["mean_dice_3d"], abs=1e-6)
    tta = run_evaluate(small_cohort, str(tmp_path / "m32"), tmp_path / "e3", post={"tta": True}, log_mlflow=False)
    assert tta["post"]["tta"] is True and 0.0 <= tta["mean_dice_3d"] <= 1.0

    other = TrainParams(**{**TINY_FIT, "model": {"arch": "plain_unet", "base_filters": 4, "depth": 2},
                           "steps_per_epoch": 2, "epochs": 1, "image_size": 48})
    run_train(small_cohort, manifest, splits, other, out_dir=tmp_path / "m48", store_dir=tmp_path / "a48",
              checkpoint_dir=tmp_path / "c48", reports_dir=tmp_path / "r48", log_mlflow=False)
    with pytest.raises(GliomicsError, match="prepares its input differently.*image_size"):
        run_evaluate(small_cohort, [str(tmp_path / "m32"), str(tmp_path / "m48")], tmp_path / "e4", log_mlflow=False)
