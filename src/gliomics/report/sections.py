"""The sections of the study report, each built from the files the stages wrote.

Every function takes a :class:`ReportInputs` (where the reports are, the
parameters, the cohort folder) and returns a :class:`~gliomics.report.html.Section`.
A missing optional input never raises: its part of the section becomes the
"not available yet: run `gliomics <stage>`" box. Nothing is recomputed
that a stage already wrote (tables and figures are read and embedded); the
only new numbers are counts and the truth-vs-predicted ICC when the
association stage did not write it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from gliomics.data.kaggle import CLUSTER_FAMILIES, HISTOLOGY_NAMES, read_clinical
from gliomics.report import html as h
from gliomics.report.agreement import agreement_table, surviving_associations
from gliomics.report.methods import methods_paragraphs
from gliomics.report.segmentation_plots import dice_distribution
from gliomics.schema import FEATURE_COLUMNS
from gliomics.stats.published import replication_table

ALPHA = 0.05
SEGMENTER = "gliomics-segmenter"
CLASSIFIER = "gliomics-slice-classifier"
#: The groups of the association analysis, in the order the report shows them.
GROUP_ORDER = ("all", "astrocytoma", "oligoastrocytoma", "oligodendroglioma")


@dataclass
class ReportInputs:
    """Where the report reads from, and what it has read (for MLflow and the DVC stage)."""

    reports: Path
    params: object  # gliomics.config.Params
    data_dir: Path | None = None
    #: Folder of the HTML file (links are relative to it).
    out_dir: Path = Path("reports")
    #: The worst patients' overlay figure, or the reason there is none.
    overlays: object = None
    used: list[Path] = field(default_factory=list)

    def path(self, relative: str) -> Path:
        return self.reports / relative

    def exists(self, relative: str) -> bool:
        return self.path(relative).exists()

    def json(self, relative: str) -> dict | None:
        path = self.path(relative)
        if not path.is_file():
            return None
        try:
            value = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        self.used.append(path)
        return value

    def csv(self, relative: str, **kwargs):
        path = self.path(relative)
        if not path.is_file():
            return None
        try:
            frame = pd.read_csv(path, **kwargs)
        except (OSError, ValueError):
            return None
        self.used.append(path)
        return frame

    def image(self, relative: str, caption: str, **kwargs) -> str:
        path = self.path(relative)
        if path.is_file():
            self.used.append(path)
        return h.image(path, caption=caption, **kwargs)

    def clinical(self):
        """The cohort's ``data.csv`` (numeric codes), or None."""
        if self.data_dir is None:
            return None
        path = Path(self.data_dir) / "data.csv"
        if not path.is_file():
            return None

        try:
            return read_clinical(path)
        except Exception:  # an unreadable table is reported as missing, not raised
            return None


def flat(mapping: dict) -> dict:
    """One level of nested dicts flattened (``metrics.test_mean_dice_3d``), lists joined, the rest kept."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict):
            out.update({f"{key}.{k}": v for k, v in value.items() if not isinstance(v, (dict, list))})
        elif isinstance(value, list):
            out[key] = ", ".join(str(v) for v in value if not isinstance(v, (dict, list)))
        else:
            out[key] = value
    return out


def _p_format(value) -> str:
    return h.format_number(value)


def _significant(column, value) -> bool:
    return column != "feature" and isinstance(value, float) and value < ALPHA


# --------------------------------------------------------------------- cohort
def cohort_section(ctx: ReportInputs) -> h.Section:
    section = h.Section("Cohort")
    summary = ctx.json("validate/summary.json")
    clinical = ctx.clinical()
    if summary is None and clinical is None:
        section.available = False
        return section.add(h.placeholder("Cohort summary", "gliomics validate",
                                         missing=[ctx.path("validate/summary.json")]))
    if summary is not None:
        section.add(h.cards({"patients": summary.get("n_patients"), "slices": summary.get("n_slices"),
                             "slices with tumour": summary.get("n_tumour_slices"),
                             "validation": "passed" if summary.get("success") else "FAILED"}))
    section.add(h.subsection("Validation"))
    docs = ctx.path("validate/data_docs/index.html")
    if summary is not None:
        state = ("passed all expectations" if summary.get("success")
                 else f"FAILED with {summary.get('n_problems')} problem(s)")
        section.add(h.paragraph(f"The cohort in {h.shown_path(summary.get('data_dir', ctx.data_dir))} {state} "
                                f"({summary.get('n_ignored_files', 0)} file(s) outside the layout ignored)."))
    if docs.is_file():
        link = os.path.relpath(docs, ctx.out_dir)
        section.add(h.paragraph(f'Full Great Expectations report: <a href="{h.escape(link)}">{h.escape(link)}</a> '
                                "(opens the data docs beside this file).", raw=True))
    else:
        section.add(h.placeholder("Great Expectations data docs", "gliomics validate", missing=[docs]))

    section.add(h.subsection("Histology and grade"))
    if clinical is None:
        section.add(h.placeholder("data.csv (clinical and cluster labels)", "gliomics validate",
                                  missing=[Path(ctx.data_dir or "data/raw") / "data.csv"]))
    else:
        histology = clinical["histological_type"].map(HISTOLOGY_NAMES).fillna("missing")
        grade = clinical["neoplasm_histologic_grade"].map({1: "G2", 2: "G3"}).fillna("missing")
        counts = pd.crosstab(histology, grade, margins=True, margins_name="total")
        counts.index.name = "histological type"
        section.add(h.table(counts.reset_index(), caption="patients by histological type and grade",
                            sortable=False))
        section.add(h.subsection("Missing cluster labels"))
        rows = []
        for family in CLUSTER_FAMILIES:
            if family in clinical:
                n_missing = int(clinical[family].isna().sum())
                rows.append({"family": family, "missing": n_missing, "labelled": len(clinical) - n_missing,
                             "share missing": f"{n_missing / max(len(clinical), 1):.0%}",
                             "levels (patients)": ", ".join(
                                 f"{int(k)}: {v}" for k, v in clinical[family].value_counts().sort_index().items())})
        section.add(h.table(pd.DataFrame(rows), caption="patients without a label, per cluster family"))

    split = ctx.json("split/summary.json")
    section.add(h.subsection("Patient-level split"))
    if split is None:
        section.add(h.placeholder("The split", "gliomics split", missing=[ctx.path("split/summary.json")]))
    else:
        rows = []
        for part, counts in sorted(split.get("parts", {}).items()):
            row = {"part": part, **counts}
            row.update(split.get("histology_by_part", {}).get(part, {}))
            rows.append(row)
        section.add(h.paragraph(f"{split.get('n_patients')} patients split by patient (seed {split.get('seed')}): "
                                f"{split.get('n_test_patients')} internal test patients, "
                                f"{split.get('n_folds')} folds."),
                    h.table(pd.DataFrame(rows), caption="patients, slices and histology per part"))
    return section


# --------------------------------------------------------------------- segmentation
def evaluation_of_test_patients(ctx: ReportInputs):
    """(per_patient, summary, folder) of the champion's test evaluation, else of `gliomics evaluate`."""
    for folder in ("register/evaluate", "evaluate"):
        table = ctx.csv(f"{folder}/per_patient.csv")
        if table is not None:
            return table, ctx.json(f"{folder}/summary.json") or {}, folder
    return None, {}, None


def _tune_summary(ctx: ReportInputs) -> list[str]:
    blocks = [h.subsection("Architecture and hyper-parameter search")]
    trials = ctx.csv("tune/trials.csv")
    best = ctx.json("tune/best.json")
    if trials is None and best is None:
        return blocks + [h.placeholder("The search summary", "gliomics tune",
                                       missing=[ctx.path("tune/trials.csv"), ctx.path("tune/best.json")])]
    if trials is not None and len(trials):
        states = trials["state"].value_counts()
        blocks.append(h.cards({"trials": len(trials), "complete": int(states.get("COMPLETE", 0)),
                               "pruned": int(states.get("PRUNED", 0)), "failed": int(states.get("FAIL", 0))}))
        if "fidelity" in trials:
            by = pd.crosstab(trials["fidelity"], trials["state"]).reset_index()
            blocks.append(h.table(by, caption="trials by fidelity and state", sortable=False))
        done = trials[trials["state"] == "COMPLETE"].sort_values("value", ascending=False)
        params = [c for c in trials.columns if c.startswith("param_")]
        columns = ["number", *(["fidelity"] if "fidelity" in trials else []), "value",
                   *[c for c in ("epochs_run", "duration_s") if c in trials], *params]
        if len(done):
            blocks.append(h.table(done[columns].head(5).rename(columns=lambda c: c.removeprefix("param_")),
                                  caption="best configurations (value: best validation per-patient 3D Dice)"))
    if best is not None:
        blocks.append(h.key_values({
            "study": best.get("study_name"), "best trial": best.get("trial_number"),
            "fidelity": best.get("fidelity"), "validation 3D Dice": best.get("val_dice_3d"),
            "trials (complete / pruned / failed)": f"{best.get('n_trials')} ({best.get('n_complete')} / "
                                                   f"{best.get('n_pruned')} / {best.get('n_failed')})",
            "search time (s)": best.get("seconds"), "model": h.shown_path(best.get("model_uri", "")),
            **{f"param {k}": v for k, v in (best.get("params") or {}).items()},
        }, caption="best trial (reports/tune/best.json)"))
    importances = ctx.csv("tune/importances.csv")
    if importances is not None:
        blocks.append(h.table(importances.sort_values("importance", ascending=False),
                              caption="parameter importances (fANOVA)", formats={"importance": ".3f"}))
    figures = sorted(ctx.path("tune/figures").glob("*.png")) if ctx.exists("tune/figures") else []
    for figure in figures:
        ctx.used.append(figure)
        blocks.append(h.image(figure, caption=f"search: {figure.stem.replace('_', ' ')}"))
    return blocks


def segmentation_section(ctx: ReportInputs) -> h.Section:
    section = h.Section("Segmentation")
    section.add(h.subsection("The champion"))
    mirror = ctx.json(f"registry/{SEGMENTER}.json")
    registered = ctx.json("register/registered.json")
    if mirror is not None:
        section.add(h.key_values(flat(mirror),
                                 caption=f"current champion (reports/registry/{SEGMENTER}.json)"))
    if registered is not None:
        section.add(h.key_values(flat(registered),
                                 caption="last registered version (reports/register/registered.json)"))
    if mirror is None and registered is None:
        section.add(h.placeholder(f"A registered {SEGMENTER} champion", "gliomics register",
                                  missing=[ctx.path(f"registry/{SEGMENTER}.json"),
                                           ctx.path("register/registered.json")]))
    best = ctx.json("tune/best.json")
    settings = (best or {}).get("train_settings")
    if settings:
        section.add(h.key_values({k: v for k, v in settings.items() if k != "augment"},
                                 caption="training settings of the champion (reports/tune/best.json)"))
    else:
        train = ctx.json("train/metrics.json")
        params = vars(ctx.params.train_settings())
        section.add(h.key_values({**{k: v for k, v in params.items() if k != "augment"},
                                  **({"best validation 3D Dice": train.get("best_val_dice_3d"),
                                      "epochs run": train.get("epochs_run")} if train else {})},
                                 caption=f"training settings of `gliomics train` (profile {ctx.params.profile})"))

    section.add(h.subsection("Per-patient 3D Dice on the internal test patients"))
    table, summary, folder = evaluation_of_test_patients(ctx)
    if table is None:
        section.add(h.placeholder("The test evaluation", "gliomics evaluate",
                                  missing=[ctx.path("register/evaluate/per_patient.csv"),
                                           ctx.path("evaluate/per_patient.csv")]))
    else:
        section.add(h.paragraph(f"Model {h.shown_path(summary.get('model_uri', '?'))} on {len(table)} internal test patients "
                                f"(reports/{folder}): mean 3D Dice {summary.get('mean_dice_3d', float('nan')):.3f}, "
                                f"median {summary.get('median_dice_3d', float('nan')):.3f}. Buda et al. (2019) "
                                "reported a mean of 82% on the real cohort."))
        section.add(h.image(dice_distribution(table), caption="one dot per test patient; the worst are named"))
        columns = [c for c in ("patient", "n_slices", "true_voxels", "pred_voxels", "dice_3d", "iou_3d", "hd95_px",
                               "mean_slice_dice") if c in table]
        section.add(h.table(table[columns].sort_values("dice_3d"), caption="per-patient scores (worst first)",
                            formats={"dice_3d": ".3f", "iou_3d": ".3f", "hd95_px": ".1f",
                                     "mean_slice_dice": ".3f"}))
        section.add(h.subsection("The five worst test patients"))
        if ctx.overlays is None or isinstance(ctx.overlays, str):
            why = ctx.overlays or "no model or cohort to draw them from"
            section.add(h.placeholder(f"Overlay strips ({why})", "gliomics report"))
        else:
            section.add(h.image(ctx.overlays, caption="largest true-tumour slice of each: FLAIR, truth (green), "
                                                      "prediction (orange)"))
    if ctx.exists("train/learning_curves.png"):
        section.add(h.subsection("Training curves"),
                    ctx.image("train/learning_curves.png", "loss and Dice per epoch of `gliomics train`"))
    section.add(*_tune_summary(ctx))
    return section


# --------------------------------------------------------------------- classifier
def classifier_section(ctx: ReportInputs) -> h.Section:
    section = h.Section("Slice classifier")
    summary = ctx.json("classifier/evaluate/summary.json")
    mirror = ctx.json(f"registry/{CLASSIFIER}.json")
    if summary is None:
        section.available = False
        return section.add(h.placeholder("The slice classifier's evaluation",
                                         "gliomics train-classifier, then gliomics evaluate --task classifier",
                                         missing=[ctx.path("classifier/evaluate/summary.json")]))
    scalars = {k: v for k, v in summary.items() if isinstance(v, (int, float, str)) and not isinstance(v, bool)}
    headline = {k: scalars[k] for k in ("n_slices", "accuracy", "roc_auc", "f1", "sensitivity", "specificity")
                if k in scalars}
    section.add(h.cards({k.replace("_", " "): v for k, v in headline.items()}))
    others = {k: v for k, v in scalars.items() if k not in headline}
    if others:
        section.add(h.key_values(others, caption="evaluation (reports/classifier/evaluate/summary.json)"))
    if mirror is not None:
        section.add(h.key_values(flat(mirror),
                                 caption=f"current champion (reports/registry/{CLASSIFIER}.json)"))
    train = ctx.json("classifier/train/metrics.json")
    if train is not None:
        section.add(h.key_values(flat(train),
                                 caption="training (reports/classifier/train/metrics.json)"))
    section.add(h.subsection("Confusion matrix and ROC"),
                ctx.image("classifier/evaluate/confusion_matrix.png", "confusion matrix (test slices)"),
                ctx.image("classifier/evaluate/roc.png", "ROC curve (test slices)"))
    section.add(*_activation_pooling(ctx))
    return section


def activation_pooling_table(trials: pd.DataFrame) -> pd.DataFrame:
    """The thesis' activation x pooling table from a classifier search's ``trials.csv``: one row per
    activation, one column per head pooling, the validation ROC AUC of the completed low-fidelity trial of that
    cell (the mean where a cell ran more than once); NaN where no trial of the cell completed."""
    done = _completed_low_fidelity(trials)
    if done.empty or not {"param_activation", "param_pooling"} <= set(trials.columns):
        return pd.DataFrame()
    table = done.pivot_table(index="param_activation", columns="param_pooling", values="value", aggfunc="mean")
    every = trials.dropna(subset=["param_activation", "param_pooling"])
    table = table.reindex(index=sorted(every["param_activation"].unique()),
                          columns=sorted(every["param_pooling"].unique()))
    table.index.name, table.columns.name = "activation", None
    return table.reset_index()


def _completed_low_fidelity(trials: pd.DataFrame) -> pd.DataFrame:
    return trials[(trials["state"] == "COMPLETE") & (trials.get("fidelity", "low") == "low")]


def _activation_pooling(ctx: ReportInputs) -> list[str]:
    blocks = [h.subsection("Activation x pooling (the thesis' table)")]
    trials = ctx.csv("classifier/tune/trials.csv")
    table = activation_pooling_table(trials) if trials is not None else pd.DataFrame()
    if table.empty:
        return blocks + [h.placeholder("The activation x pooling table", "gliomics tune --task classifier",
                                       missing=[ctx.path("classifier/tune/trials.csv")])]
    columns = [c for c in table.columns if c != "activation"]
    epochs = _completed_low_fidelity(trials)["epochs_run"]  # not the longer full-fidelity retrains
    blocks.append(h.paragraph(
        "Validation ROC AUC at the best epoch of each cell's low-fidelity trial (head pooling in the columns), "
        f"each cell trained for {int(epochs.max())} epochs of the search's budget "
        "(tune_classifier.<profile>.low_fidelity); one seed per cell, and one seed moved a cell by up to 0.07 "
        "on the project's data (benchmarks/RESULTS.md, 2026-12-06), so smaller differences may be noise. "
        "Within that budget the table ranks how fast a cell learns: trained on ten times the slices, "
        "leaky_relu x max and relu x avg (0.974 and 0.907 after 16,000 slices) reached the same validation "
        "ROC AUC, 0.989 (same place). "
        "Blank: the cell did not complete."))
    best = table[columns].max().max()
    blocks.append(h.table(table, caption="validation ROC AUC per activation and head pooling",
                          formats={c: ".3f" for c in columns}, highlight=lambda _c, v: v == best))
    return blocks


# --------------------------------------------------------------------- radiogenomics
def _groups(ctx: ReportInputs, folder: str) -> list[str]:
    found = [p.name.removeprefix("significance_").removesuffix(".csv")
             for p in ctx.path(folder).glob("significance_*.csv") if not p.name.startswith("significance_fdr_")]
    return [g for g in GROUP_ORDER if g in found] + sorted(g for g in found if g not in GROUP_ORDER)


def _tested(frame) -> bool:
    return not frame.drop(columns=["feature"]).isna().all().all()


def _significance_table(frame, caption: str) -> str:
    if not _tested(frame):
        return h.note(f"{caption}: not tested (too few patients; reasons in tests.csv).")
    short = {c: c.removesuffix("Cluster").replace("neoplasm_histologic_grade", "grade") for c in frame.columns}
    frame = frame.rename(columns=short)
    return h.table(frame, caption=caption + " (columns: cluster families and outcomes)",
                   formats={c: _p_format for c in frame.columns if c != "feature"}, highlight=_significant)


def radiogenomics_section(ctx: ReportInputs, folder: str = "associations/truth") -> h.Section:
    section = h.Section("Radiogenomics")
    summary = ctx.json(f"{folder}/summary.json")
    if summary is None:
        section.available = False
        return section.add(h.placeholder("The association analysis", "gliomics associate",
                                         missing=[ctx.path(f"{folder}/summary.json")]))
    section.add(h.cards({"patients": summary.get("n_patients"), "Freeman-Halton tests": summary.get("n_tests"),
                         "significant (Bonferroni)": summary.get("n_significant_bonferroni"),
                         "significant (FDR)": summary.get("n_significant_fdr"),
                         f"pairs with AUC > {summary.get('auc_threshold', 0.7)}": summary.get("n_auc_top")}))
    section.add(h.note("Cells: Bonferroni- (or FDR-) corrected p of the exact Fisher-Freeman-Halton test of the "
                       "median-split feature against the outcome; highlighted below 0.05; blank = not tested "
                       "(the reason is in tests.csv)."))
    section.add(h.subsection("Significance tables (Bonferroni)"))
    for group in _groups(ctx, folder):
        frame = ctx.csv(f"{folder}/significance_{group}.csv")
        if frame is not None:
            section.add(_significance_table(frame, f"{group}: Bonferroni-corrected p"))
    section.add(h.subsection("Significance tables (FDR)"))
    for group in _groups(ctx, folder):
        frame = ctx.csv(f"{folder}/significance_fdr_{group}.csv")
        if frame is not None:
            section.add(_significance_table(frame, f"{group}: Benjamini-Hochberg FDR"))

    section.add(h.subsection("Feature-cluster pairs with ROC AUC above the threshold"))
    top = ctx.csv(f"{folder}/roc_auc_top.csv")
    if top is None:
        section.add(h.placeholder("roc_auc_top.csv", "gliomics associate",
                                  missing=[ctx.path(f"{folder}/roc_auc_top.csv")]))
    elif top.empty:
        section.add(h.paragraph(f"No pair has AUC above {summary.get('auc_threshold', 0.7)}."))
    else:
        columns = [c for c in ("group", "family", "level", "feature", "auc", "ci_low", "ci_high", "direction",
                               "n_pos", "n_neg", "p_ovr_bonferroni") if c in top]
        section.add(h.table(top[columns].sort_values(["auc", "ci_low"], ascending=False),
                            caption="one cluster level vs the rest, bootstrap 95% CI; direction: whether high or "
                                    "low values point to the level",
                            formats={"auc": ".3f", "ci_low": ".3f", "ci_high": ".3f",
                                     "p_ovr_bonferroni": _p_format}))
    section.add(h.subsection("Figures"),
                ctx.image(f"{folder}/figures/heatmap_pvalues.png", "-log10 p per feature and outcome, per group"),
                ctx.image(f"{folder}/figures/roc_top.png", "ROC curves of the strongest pairs"))
    tested = {g for g in _groups(ctx, folder)
              if (frame := ctx.csv(f"{folder}/significance_{g}.csv")) is not None and _tested(frame)}
    histograms = sorted(ctx.path(f"{folder}/figures").glob("histograms_*.png"),
                        key=lambda p: (GROUP_ORDER.index(p.stem.split("_")[1])
                                       if p.stem.split("_")[1] in GROUP_ORDER else 9, p.name))
    skipped = set()
    for path in histograms:
        group, kind = path.stem.removeprefix("histograms_").rsplit("_", 1)
        if group not in tested:
            skipped.add(group)
            continue
        ctx.used.append(path)
        section.add(h.image(path, caption=f"{group}: {kind} features by cluster level"))
    if skipped:
        section.add(h.note(f"Histograms of the untested groups ({', '.join(sorted(skipped))}) are in "
                           f"reports/{folder}/figures/."))
    _replication(ctx, section, folder)
    return section


def _replication(ctx: ReportInputs, section: h.Section, folder: str) -> None:
    """The published associations beside ours on manual (and, when present, predicted) masks."""
    truth_tests = ctx.csv(f"{folder}/tests.csv")
    if truth_tests is None:
        return
    predicted = sorted(p for p in ctx.path("associations").glob("pred*") if (p / "tests.csv").is_file())
    predicted_tests = ctx.csv(f"associations/{predicted[0].name}/tests.csv") if predicted else None
    predicted_roc = ctx.csv(f"associations/{predicted[0].name}/roc_auc.csv") if predicted else None
    table = replication_table(truth_tests, ctx.csv(f"{folder}/roc_auc.csv"), predicted_tests, predicted_roc)
    ours = ["p", "p_bonferroni", "best_auc", "auc_level", "direction"]
    kinds = ["truth"] + (["predicted"] if predicted_tests is not None else [])
    columns = ["source", "group", "family", "feature", "reported_p"] + [f"{c}_{k}" for k in kinds for c in ours]
    section.add(h.subsection("Published associations, replicated"))
    section.add(h.paragraph("Each association reported by Mazurowski et al. (2017), Buda et al. (2019) or Kota "
                            "(2024, per histological type), with our exact test on the same feature and cluster "
                            "family (raw and Bonferroni p; blank: not tested here) and the best one-vs-rest AUC "
                            "(its cluster level, and whether the feature is higher or lower there)"
                            + (", on manual and on predicted masks." if predicted_tests is not None else
                               ", on manual masks.")))
    section.add(h.table(table[columns], caption="published p vs ours",
                        formats={c: _p_format for c in columns if c.startswith("p_")}
                        | {f"best_auc_{k}": ".3f" for k in kinds}))


# --------------------------------------------------------------------- agreement
PREDICTED_TABLES = ("features/features_predicted.csv", "features/features_pred.csv")


def agreement_section(ctx: ReportInputs) -> h.Section:
    """ICC truth vs predicted masks, and which truth associations survive on predicted masks."""
    section = h.Section("Truth vs predicted masks")
    predicted = next((ctx.csv(p) for p in PREDICTED_TABLES if ctx.exists(p)), None)
    truth = ctx.csv("features/features_truth.csv")
    if predicted is None or truth is None:
        section.available = False
        return section.add(h.placeholder(
            "Predicted-mask features", "gliomics segment, then gliomics features --masks predicted",
            missing=[ctx.path(p) for p in PREDICTED_TABLES[:1]] + [ctx.path("features/features_truth.csv")]))
    columns = [c for c in FEATURE_COLUMNS if c in truth and c in predicted]
    # Computed from the current tables: associate's agreement.csv exists only when the predicted table
    # was present as it ran, and may be older than that table.
    table = agreement_table(truth, predicted, columns)
    section.add(h.paragraph(f"{len(predicted)} patients with predicted-mask features, {len(truth)} with truth-mask "
                            "features. ICC(2,1) (absolute agreement) drops with any systematic offset; ICC(3,1) "
                            "(consistency) only with a different ranking of the patients, which is what a "
                            "median-split test depends on."))
    section.add(h.table(table, caption="per feature: agreement of truth- and predicted-mask values",
                        formats={c: ".3f" for c in ("icc", "icc_ci_low", "icc_ci_high", "icc_3_1")}))

    section.add(h.subsection("Which associations survive on predicted masks"))
    folders = sorted(p for p in ctx.path("associations").glob("pred*") if (p / "tests.csv").is_file())
    truth_tests = ctx.csv("associations/truth/tests.csv")
    predicted_tests = ctx.csv(f"associations/{folders[0].name}/tests.csv") if folders else None
    if truth_tests is not None and predicted_tests is not None:
        fate = surviving_associations(truth_tests, predicted_tests)
    else:
        fate = ctx.csv("associations/truth/agreement_tests.csv")
    if fate is None:
        section.add(h.placeholder("Associations on predicted-mask features",
                                  "gliomics associate --features reports/features/features_predicted.csv "
                                  "--out reports/associations/predicted",
                                  missing=[ctx.path("associations/predicted/tests.csv")]))
        return section
    if fate.empty:
        section.add(h.paragraph("No association was significant after Bonferroni on truth masks."))
        return section
    n_survive = int(fate["survives"].fillna(False).astype(bool).sum())
    section.add(h.paragraph(f"{n_survive} of {len(fate)} associations significant after Bonferroni on truth "
                            "masks are still significant on predicted masks."))
    columns = [c for c in ("group", "family", "feature", "p_bonferroni_truth", "p_bonferroni_predicted",
                           "survives") if c in fate]
    section.add(h.table(fate[columns], caption="Bonferroni p of the Freeman-Halton test, truth vs predicted masks",
                        formats={"p_bonferroni_truth": _p_format, "p_bonferroni_predicted": _p_format}))
    return section


# --------------------------------------------------------------------- methods
def methods_section(ctx: ReportInputs) -> h.Section:
    best = ctx.json("tune/best.json") or {}
    registered = ctx.json("register/registered.json") or ctx.json(f"registry/{SEGMENTER}.json") or {}
    source = registered.get("model_uri") or best.get("model_uri") or ""
    validate = ctx.json("validate/summary.json") or {}
    section = h.Section("Methods")
    for heading, text in methods_paragraphs(ctx.params, train_settings=best.get("train_settings"),
                                            model_source=source, n_patients=validate.get("n_patients")):
        section.add(h.paragraph(f"<strong>{h.escape(heading)}.</strong> {h.escape(text)}", raw=True))
    section.add(h.note("Generated from params.yaml (and reports/tune/best.json for the champion's training "
                       "settings) at the time the report was built."))
    return section


SECTION_BUILDERS = (cohort_section, segmentation_section, classifier_section, radiogenomics_section,
                    agreement_section, methods_section)
