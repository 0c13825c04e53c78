"""The segmenter as a slice classifier: a slice's score is its largest tumour probability."""

from __future__ import annotations

import numpy as np
import pytest

from gliomics.models.gate import SegmenterSliceScore


class Fixed:
    """A "segmenter" returning given probability maps."""

    output_shape = (None, 4, 4, 1)

    def __init__(self, maps):
        self.maps = maps

    def __call__(self, batch, training=False):
        return self.maps[: len(batch)]


def test_the_slice_score_is_the_largest_pixel_probability():
    maps = np.zeros((3, 4, 4, 1), np.float32)
    maps[0, 1, 2] = 0.7
    maps[1] = 0.2
    maps[2, 3, 3] = 0.49
    scores = SegmenterSliceScore(Fixed(maps))(np.zeros((3, 4, 4, 3), np.float32))
    assert scores.shape == (3, 1)
    np.testing.assert_allclose(scores[:, 0], [0.7, 0.2, 0.49])


def test_evaluate_classifier_from_a_segmenter(small_cohort, stub_segmenter, tmp_path):
    """The stub segmenter (FLAIR brightness) scores slices; threshold 0.5 = "any tumour pixel predicted"."""
    import pandas as pd

    from gliomics.errors import GliomicsError
    from gliomics.stages.evaluate_classifier import run_evaluate_classifier

    summary = run_evaluate_classifier(small_cohort, stub_segmenter, tmp_path / "e", log_mlflow=False,
                                      from_segmenter=True)
    per_slice = pd.read_csv(tmp_path / "e" / "per_slice.csv")
    assert summary["slice_score"] == "segmenter max probability" and summary["threshold"] == 0.5
    assert per_slice["prob"].between(0, 1).all() and summary["n_slices"] == len(per_slice)
    again = run_evaluate_classifier(small_cohort, [stub_segmenter, stub_segmenter], tmp_path / "e2",
                                    log_mlflow=False, from_segmenter=True, threshold=0.3)
    assert again["threshold"] == 0.3 and " + " in again["model_uri"]
    with pytest.raises(GliomicsError, match="not a slice classifier"):
        run_evaluate_classifier(small_cohort, stub_segmenter, tmp_path / "e3", log_mlflow=False)
