"""Model cards (Mitchell et al. 2019, "Model Cards for Model Reporting"), as markdown.

A card states what a registered version is for, how it was chosen and
trained, how well it did on which patients, and where it came from, so that
someone who finds ``models:/<name>/<N>`` in the registry can judge it
without reading the pipeline. :func:`render_model_card` is pure: the
stages collect the facts.
"""

from __future__ import annotations

from collections.abc import Mapping


def _value(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, Mapping):
        return ", ".join(f"{k}={_value(v)}" for k, v in value.items()) or "{}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _table(rows: Mapping, header: tuple[str, str]) -> list[str]:
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    lines += [f"| {key} | {_value(value).replace('|', '/')} |" for key, value in rows.items()]
    return lines


def render_model_card(name: str, version: int, *, intended_use: str, selection: Mapping, training: Mapping,
                      metrics: Mapping, evaluation: str, provenance: Mapping, limitations: list[str]) -> str:
    """The card of ``name`` version ``version`` as markdown.

    ``selection``: how the version was chosen (study, trial, searched params);
    ``training``: the full training settings; ``metrics``: label -> number
    (validation first, then internal test); ``evaluation``: one paragraph on
    the patients and protocol behind the metrics; ``provenance``: git commit,
    data hash, profile, run ids; ``limitations``: one bullet each.
    """
    lines = [f"# Model card: {name} version {version}", "", f"`models:/{name}/{version}`", "",
             "## Intended use", "", intended_use, "",
             "## How it was chosen", "", *_table(selection, ("what", "value")), "",
             "## Training settings", "", *_table(training, ("setting", "value")), "",
             "## Performance", "", *_table(metrics, ("metric", "value")), "", evaluation, "",
             "## Provenance", "", *_table(provenance, ("what", "value")), "",
             "## Limitations", "", *[f"- {item}" for item in limitations], ""]
    return "\n".join(lines)
