"""The methods paragraphs of the study report, generated from the parameters actually used.

:func:`methods_paragraphs` reads the typed ``params.yaml`` settings (and,
where the search or the registry ran, the champion's training settings), so
that what the report says was done is what the pipeline did. Pure: settings
in, plain-text paragraphs out.
"""

from __future__ import annotations

from gliomics.features.shape2d import ASD_BINS, CONVEXITY_DEFECT_MIN_DEPTH, MF_WINDOW
from gliomics.report.html import shown_path
from gliomics.schema import FEATURE_COLUMNS

#: Correction family → how the methods text says it.
_CORRECTION_WORDS = {
    "group": "over all tests of one kind within one histological group (one significance table is one family)",
    "group_family": "over the features within one histological group and one outcome",
    "all": "over all tests of one kind across every group and outcome",
}


def _list(items) -> str:
    items = [str(i) for i in items]
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def _model_words(model: dict) -> str:
    model = dict(model or {})
    arch = model.pop("arch", "?")
    if arch == "plain_unet":
        text = (f"a plain U-Net (depth {model.pop('depth', '?')}, {model.pop('base_filters', '?')} filters in the "
                "first block)")
    else:
        text = f"a {arch} with a {model.pop('backbone', '?')} encoder (randomly initialised)"
    extras = ", ".join(f"{k} {v}" for k, v in sorted(model.items()))
    return text + (f" ({extras})" if extras else "")


def methods_paragraphs(params, *, train_settings: dict | None = None, model_source: str = "",
                       n_patients: int | None = None) -> list[tuple[str, str]]:
    """``[(heading, text), ...]``: data and split, features, statistics, segmentation.

    ``params`` is :class:`gliomics.config.Params`; ``train_settings`` (a
    TrainParams-like dict) overrides ``params.train_settings()`` when the
    champion came from the search (``reports/tune/best.json``);
    ``model_source`` names where the segmenter came from.
    """
    split, feats, assoc, post = params.split, params.features, params.associate, params.post
    who = f"{n_patients} patients" if n_patients else "the cohort's patients"
    data = (
        f"The cohort ({who}, folder {shown_path(params.data.raw)}, Kaggle LGG layout: 256x256 three-channel "
        "slices, pre-contrast, FLAIR and post-contrast, with FLAIR-abnormality masks) was validated with Great "
        "Expectations before any analysis. Patients (never slices) were split with seed "
        f"{split.seed}: {split.test_fraction:.0%} held out as the internal test set, never used for training, "
        f"tuning or model selection, and {split.n_folds} cross-validation folds over the rest, stratified by "
        "histological type" + (" and, where counts allow, institution" if split.stratify_institution else "")
        + "."
    )
    bins = (f"a fixed bin width of {feats.glcm_bin_width:g}" if feats.glcm_bin_width > 0
            else f"{feats.glcm_n_bins} grey levels over the tumour's own intensity range")
    channel = {0: "pre-contrast", 1: "FLAIR", 2: "post-contrast"}.get(feats.channel, f"channel {feats.channel}")
    features = (
        f"Per patient, the {len(FEATURE_COLUMNS)} features of Mazurowski et al. (2017) and "
        "Buda et al. (2019) were computed on the slice with the largest tumour area: angular standard deviation "
        f"of the radial distance ({ASD_BINS} angular bins), eccentricity, margin fluctuation (radial distance "
        f"minus its moving average over {MF_WINDOW:.0%} of the boundary), solidity, extent, equivalent "
        f"diameter, perimeter, the number of convexity defects deeper than {CONVEXITY_DEFECT_MIN_DEPTH:g} "
        "pixels, aspect ratio of the minimum-area rectangle, and the bounding ellipsoid volume ratio (tumour "
        "volume over its minimum-volume enclosing ellipsoid, in 3D); and the GLCM contrast, correlation, energy "
        f"(square root of the angular second moment) and homogeneity of the {channel} channel, counting only "
        f"pixel pairs inside the tumour, at distance(s) {_list(feats.glcm_distances)} and angles "
        f"{_list(f'{a:g}°' for a in feats.glcm_angles_deg)} (averaged), with {bins}"
        + (", symmetric" if feats.glcm_symmetric else "") + ". The same 2D features were also averaged over all "
        "tumour slices (weighted by area), and 3D descriptors (volume, surface area, sphericity, maximum "
        f"diameter, solidity) were computed with slices {feats.slice_spacing_ratio:g} pixels apart."
    )
    outcomes = list(assoc.families) + list(assoc.extra_outcomes)
    correction = _CORRECTION_WORDS.get(assoc.correction_family, assoc.correction_family)
    stats = (
        f"Within each histological type and for all patients pooled (groups of fewer than "
        f"{assoc.min_patients} labelled patients were not tested), each feature was split at the group median "
        f"and crossed with each outcome ({_list(outcomes)}); the exact Fisher-Freeman-Halton test gave the p "
        "value of that 2 x k table. Kruskal-Wallis tests on the continuous values and one-level-versus-rest "
        "Fisher 2 x 2 tests (with odds ratios) complement it. P values were corrected by Bonferroni and, "
        f"separately, by Benjamini-Hochberg (FDR) {correction}; "
        f"significance at 0.05. One-versus-rest ROC AUCs were computed for every cluster level with at least "
        f"{assoc.min_class_size} patients on each side, with {assoc.n_boot} stratified bootstrap resamples "
        f"({assoc.ci_method.upper() if assoc.ci_method == 'bca' else assoc.ci_method} 95% intervals, seed "
        f"{assoc.seed}); pairs with AUC > {assoc.auc_threshold:g} are listed."
    )
    settings = dict(train_settings) if train_settings else vars(params.train_settings())
    threshold = f"{post.threshold:g}" if post.threshold else "the model's own threshold"
    segmentation = (
        f"The segmenter ({model_source or f'profile {params.profile}'}) is "
        f"{_model_words(settings.get('model'))}, trained on {settings.get('image_size', '?')}x"
        f"{settings.get('image_size', '?')} slices (per-patient z-score over brain pixels) with the "
        f"{settings.get('loss', '?')} loss, learning rate {settings.get('learning_rate', '?')} "
        f"({settings.get('schedule', '?')} schedule), batch size {settings.get('batch_size', '?')}, up to "
        f"{settings.get('epochs', '?')} epochs, {settings.get('tumour_fraction', 0.5):.0%} tumour slices per "
        "batch; the epoch with the best mean per-patient 3D Dice on the validation fold "
        f"{settings.get('val_fold', 0)} was kept. Predictions were thresholded at {threshold}"
        + (", holes filled" if post.fill_holes else "")
        + (", and only the largest 3D connected component kept" if post.largest_component else "")
        + ". Scores are per-patient 3D Dice on the internal test patients."
    )
    return [("Data and split", data), ("Radiomic features", features), ("Statistics", stats),
            ("Segmentation", segmentation)]
