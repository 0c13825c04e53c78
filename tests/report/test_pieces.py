"""The pure pieces of the reports: HTML building blocks, ICC(3,1), surviving associations,
the methods text, percentiles and typical cluster levels."""

from __future__ import annotations

import base64
import math

import numpy as np
import pandas as pd
import pytest

from gliomics.config import params_from_dict
from gliomics.report import html as h
from gliomics.report.agreement import agreement_table, surviving_associations
from gliomics.report.methods import methods_paragraphs
from gliomics.report.patient import feature_percentiles, statement_text, typical_levels
from gliomics.report.sections import activation_pooling_table
from gliomics.stats.agreement import feature_agreement, icc_3_1

SHROUT_FLEISS = np.array([  # Shrout & Fleiss (1979), Table 2: 6 targets x 4 judges
    [9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7],
])


def test_icc_3_1_matches_shrout_fleiss():
    assert round(icc_3_1(SHROUT_FLEISS), 2) == 0.71  # published ICC(3,1); ICC(2,1) is 0.29


def test_agreement_separates_offset_from_disorder():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    truth = pd.DataFrame({"patient": [f"p{i}" for i in range(40)], "a": x, "b": x})
    predicted = truth.copy()
    predicted["a"] = x + 2.0  # same ranking, offset: consistency 1, absolute agreement lower
    predicted["b"] = rng.permutation(x)  # ranking lost
    predicted.loc[0, "a"] = np.nan
    table = agreement_table(truth, predicted, ["a", "b"]).set_index("feature")
    assert table.loc["a", "icc_3_1"] == pytest.approx(1.0) and table.loc["a", "icc"] < 0.5
    assert table.loc["a", "n_pairs"] == 39 and table.loc["a", "mean_difference"] == pytest.approx(2.0)
    assert abs(table.loc["b", "icc_3_1"]) < 0.4
    # One implementation: the association stage's agreement.csv has the same numbers (plus its own columns),
    # and counts the patients with one value only.
    full = feature_agreement(truth, predicted, ["a", "b"]).set_index("feature")
    pd.testing.assert_frame_equal(table, full[table.columns])
    assert full.loc["a", "n_truth_only"] == 1 and full.loc["b", "n_truth_only"] == 0
    tiny = agreement_table(truth.head(2), predicted.head(2), ["b"])
    assert math.isnan(tiny.loc[0, "icc"]) and "too few" in tiny.loc[0, "reason"]


def test_surviving_associations():
    keys = dict(group=["all", "all", "all"], family=["F1", "F1", "F2"], feature=["x", "y", "x"],
                test=["freeman_halton"] * 3)
    truth = pd.DataFrame({**keys, "p_bonferroni": [0.01, 0.02, 0.5]})
    predicted = pd.DataFrame({**keys, "p_bonferroni": [0.03, 0.2, 0.01]})
    fate = surviving_associations(truth, predicted)
    assert list(zip(fate.feature, fate.survives)) == [("x", True), ("y", False)]


def test_table_escapes_formats_highlights_and_truncates():
    frame = pd.DataFrame({"name": ["<b>", "a&b", "c"], "p": [0.01, 0.5, np.nan], "n": np.array([3, 1, 2])})
    text = h.table(frame, formats={"p": ".2f"}, highlight=lambda c, v: c == "p" and v < 0.05, max_rows=2)
    assert '<td data-sort="&lt;b&gt;">&lt;b&gt;</td>' in text and "a&amp;b" in text and "<b>" not in text
    assert '<td class="hit" data-num="1" data-sort="0.01">0.01</td>' in text
    assert 'data-sort="0.5">0.50</td>' in text and "1 more row(s) not shown" in text
    assert 'class="sortable"' in text and text.count("<tr>") == 3  # header + 2 rows


def test_image_embeds_figures_and_files_and_marks_missing(tmp_path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    fig.add_subplot().plot([0, 1])
    tag = h.image(fig, caption="a <plot>")
    data = base64.b64decode(tag.split(h.DATA_URI_PREFIX)[1].split('"')[0])
    assert data.startswith(b"\x89PNG") and "a &lt;plot&gt;" in tag
    (tmp_path / "f.png").write_bytes(data)
    assert h.DATA_URI_PREFIX in h.image(tmp_path / "f.png")
    missing = h.image(tmp_path / "absent.png")
    assert "<img" not in missing and "not available yet" in missing and "absent.png" in missing


def test_render_lists_sections_and_subsections_in_the_contents():
    sections = [h.Section("First part").add(h.subsection("Detail A"), h.paragraph("x")),
                h.Section("Second", available=False).add(h.placeholder("Thing", "gliomics thing"))]
    page = h.render("T", sections)
    assert page.startswith("<!DOCTYPE html>") and "<script>" in page and "http" not in page.split("<body>")[1]
    assert '<a href="#first-part">First part</a>' in page and '<a href="#detail-a">Detail A</a>' in page
    assert '<a href="#second" class="na">Second</a>' in page
    assert "run <code>gliomics thing</code>" in page


def test_methods_text_follows_the_parameters():
    base = dict(methods_paragraphs(params_from_dict({})))
    assert set(base) == {"Data and split", "Radiomic features", "Statistics", "Segmentation"}
    assert "seed 42" in base["Data and split"] and "32 grey levels" in base["Radiomic features"]
    assert "1000 stratified bootstrap" in base["Statistics"] and "plain U-Net" in base["Segmentation"]
    changed = dict(methods_paragraphs(params_from_dict({
        "split": {"seed": 7}, "features": {"glcm_bin_width": 4.0, "slice_spacing_ratio": 5.0},
        "associate": {"correction_family": "all", "n_boot": 200}})))
    assert "seed 7" in changed["Data and split"]
    assert "a fixed bin width of 4" in changed["Radiomic features"] and "5 pixels apart" in changed["Radiomic features"]
    assert "200 stratified bootstrap" in changed["Statistics"] and "across every group" in changed["Statistics"]
    tuned = dict(methods_paragraphs(params_from_dict({}), train_settings={
        "model": {"arch": "FPN", "backbone": "resnet34"}, "image_size": 128, "loss": "dice"}))
    assert "FPN with a resnet34 encoder" in tuned["Segmentation"] and "128x128" in tuned["Segmentation"]


def _cohort():
    """Ten patients: feature x high in cluster level 1, low in level 2."""
    patients = [f"TCGA_AA_{i:04d}" for i in range(10)]
    reference = pd.DataFrame({"patient": patients, "histological_type": [1] * 5 + [2] * 5,
                              "x": [10, 11, 12, 13, 14, 1, 2, 3, 4, 5], "y": np.arange(10.0)})
    clinical = pd.DataFrame({"Patient": patients, "F": [1] * 5 + [2] * 5})
    tests = pd.DataFrame({"group": ["all", "all"], "family": ["F", "F"], "feature": ["x", "y"],
                          "test": ["freeman_halton"] * 2, "p_bonferroni": [0.004, 0.9]})
    roc = pd.DataFrame({"group": ["all", "all"], "family": ["F", "F"], "level": [1, 2], "feature": ["x", "x"],
                        "auc": [1.0, 1.0], "ci_low": [0.9, 0.9], "ci_high": [1.0, 1.0],
                        "direction": ["higher", "lower"]})
    return reference, clinical, tests, roc


def test_percentiles():
    reference, *_ = _cohort()
    table = feature_percentiles({"x": 12.0, "y": math.nan}, reference, ["x", "y"]).set_index("feature")
    assert table.loc["x", "percentile"] == pytest.approx(75.0)  # 7 below, 1 tie (half), 2 above
    assert table.loc["x", "n_reference"] == 10 and math.isnan(table.loc["y", "percentile"])


def test_typical_levels_names_the_level_and_its_auc():
    reference, clinical, tests, roc = _cohort()
    (item,) = typical_levels({"x": 12.5, "y": 3.0}, reference, clinical, tests, roc)  # y is not significant
    assert item["typical"] == ["1"] and item["levels"][0]["auc"] == 1.0
    text = statement_text(item)
    assert "typical of F level 1" in text and "AUC 1.00 [0.90, 1.00]" in text and "Bonferroni p = 0.004" in text
    (between,) = typical_levels({"x": 7.5}, reference, clinical, tests, roc)
    assert between["typical"] == [] and "outside the central 80%" in statement_text(between)
    assert typical_levels({"x": math.nan}, reference, clinical, tests, roc) == []


def test_activation_pooling_table_pivots_completed_low_fidelity_trials():
    trials = pd.DataFrame({
        "state": ["COMPLETE", "COMPLETE", "COMPLETE", "FAIL", "COMPLETE"],
        "fidelity": ["low", "low", "low", "low", "full"],
        "value": [0.90, 0.94, 0.96, None, 0.99],
        "param_activation": ["relu", "relu", "relu", "gelu", "relu"],
        "param_pooling": ["avg", "avg", "max", "max", "max"],
    })
    table = activation_pooling_table(trials).set_index("activation")
    assert list(table.columns) == ["avg", "max"] and list(table.index) == ["gelu", "relu"]
    assert table.loc["relu", "avg"] == pytest.approx(0.92)  # two trials of one cell: their mean
    assert table.loc["relu", "max"] == 0.96  # the full-fidelity retrain is not a cell of the table
    assert table.loc["gelu"].isna().all()  # failed: blank, but the row shows the cell was tried
    assert activation_pooling_table(trials.drop(columns="param_pooling")).empty
