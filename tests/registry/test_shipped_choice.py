"""Which segmenter analyze uses by default: never, silently, a champion trained on the synthetic demo cohort."""

from __future__ import annotations

import pytest

from gliomics.errors import GliomicsError
from gliomics.registry.shipped import choose_segmenter, trained_on_synthetic
from gliomics.registry import champion_uri

DEMO_CHAMPION = {"version": 3, "tags": {"profile": "demo"}}
REAL_CHAMPION = {"version": 4, "tags": {"profile": "cpu"}}


@pytest.fixture
def shipped(tmp_path):
    folder = tmp_path / "lgg-segmenter"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    return folder


def test_a_given_model_is_used_as_given(shipped):
    choice = choose_segmenter(["a", "b"], shipped=shipped, champion=lambda: REAL_CHAMPION)
    assert choice.uri == ["a", "b"] and choice.reason == "given with --model"


def test_a_champion_trained_on_real_data_wins(shipped):
    choice = choose_segmenter(None, shipped=shipped, champion=lambda: REAL_CHAMPION)
    assert choice.uri == champion_uri() and "version 4" in choice.reason and "profile cpu" in choice.reason


def test_a_demo_champion_gives_way_to_the_shipped_model(shipped):
    assert trained_on_synthetic(DEMO_CHAMPION) and not trained_on_synthetic(REAL_CHAMPION)
    choice = choose_segmenter(None, shipped=shipped, champion=lambda: DEMO_CHAMPION)
    assert choice.uri == str(shipped)
    assert "version 3) was trained on the synthetic demo cohort" in choice.reason
    choice = choose_segmenter(None, shipped=shipped, champion=lambda: None)
    assert choice.uri == str(shipped) and "no champion is registered" in choice.reason


def test_without_the_shipped_model_a_demo_champion_is_refused_with_one_line(tmp_path):
    with pytest.raises(GliomicsError, match="trained on the synthetic demo cohort and the shipped segmenter"):
        choose_segmenter(None, shipped=tmp_path / "absent", champion=lambda: DEMO_CHAMPION)
    with pytest.raises(GliomicsError, match="no gliomics-segmenter champion is registered"):
        choose_segmenter(None, shipped=tmp_path / "absent", champion=lambda: None)


def test_the_shipped_model_is_found_from_another_working_directory(tmp_path, monkeypatch):
    from gliomics.registry.shipped import SHIPPED_SEGMENTER, locate

    monkeypatch.chdir(tmp_path)
    found = locate(SHIPPED_SEGMENTER)
    assert found.is_absolute() == (found / "MLmodel").is_file()  # absolute only when the checkout has it
