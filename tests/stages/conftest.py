"""Fixtures of the stage tests."""

from __future__ import annotations

import pytest

from tests.helpers import validate_and_split


@pytest.fixture(scope="session")
def tune_inputs(small_cohort, tmp_path_factory):
    """``(cohort, manifest, splits)`` for the tune tests: fold 0 validates, three fold-1 patients train, no test
    patient on disk."""
    root = tmp_path_factory.mktemp("tune_inputs")
    manifest, splits, _ = validate_and_split(small_cohort, root, ["fold0", "fold1", "fold1", "fold1"],
                                             absent_test_patient=True)
    return small_cohort, manifest, splits
