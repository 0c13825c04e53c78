"""A self-contained HTML document: sections, tables, embedded images.

The study report (``gliomics report`` → ``reports/index.html``) and the
one-patient report (``gliomics analyze`` → ``OUT/report.html``) are built
from the same few pieces:

* :class:`Section` -- a titled part of the document; the table of contents
  is generated from the sections (and their ``<h3>`` subsections).
* :func:`table` -- a pandas DataFrame as an HTML table, sortable by a click
  on a column header (a few lines of inline JavaScript: no CDN, no server).
* :func:`image` -- a PNG file or a matplotlib figure embedded as a base64
  ``data:`` URI, so the file opens anywhere without its neighbours.
* :func:`placeholder` -- the box shown where an optional input is missing:
  "not available yet: run `gliomics <stage>`".
* :func:`render` -- the whole page (inline CSS and JS).

Pure functions: strings in, strings out (figures are rendered to PNG bytes
in memory); writing the file is the stage's job.
"""

from __future__ import annotations

import base64
import html
import io as _io
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg

__all__ = [
    "Section",
    "escape",
    "figure_png",
    "image",
    "key_values",
    "note",
    "paragraph",
    "placeholder",
    "render",
    "subsection",
    "table",
]

#: Where the embedded PNG images of a rendered page start (tests decode them).
DATA_URI_PREFIX = "data:image/png;base64,"


def escape(text) -> str:
    """HTML-escape ``text`` (any object; None → empty)."""
    return "" if text is None else html.escape(str(text), quote=True)


def slug(text: str) -> str:
    """An id for an anchor: lower case, runs of other characters → ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


@dataclass
class Section:
    """A top-level part of the document (``<h2>``); ``blocks`` are HTML fragments."""

    title: str
    blocks: list[str] = field(default_factory=list)
    id: str = ""
    #: False when the section only says what to run to fill it.
    available: bool = True

    def __post_init__(self):
        self.id = self.id or slug(self.title)

    def add(self, *blocks: str) -> "Section":
        self.blocks.extend(b for b in blocks if b)
        return self


def subsection(title: str, *, anchor: str | None = None) -> str:
    """An ``<h3>`` heading (listed under its section in the table of contents)."""
    return f'<h3 id="{escape(anchor or slug(title))}">{escape(title)}</h3>'


def paragraph(text: str, *, raw: bool = False) -> str:
    """A ``<p>``; ``raw=True`` when ``text`` is already HTML."""
    return f"<p>{text if raw else escape(text)}</p>"


def note(text: str, *, raw: bool = False) -> str:
    """A small grey paragraph (how to read a table or figure)."""
    return f'<p class="note">{text if raw else escape(text)}</p>'


def placeholder(what: str, command: str | None = None, *, missing: Iterable[str | Path] = ()) -> str:
    """The box for an input that does not exist yet.

    ``command`` is what to run (e.g. ``gliomics tune``); ``missing`` the
    files looked for, named so that the reader knows what is absent.
    """
    files = ", ".join(f"<code>{escape(shown_path(p))}</code>" for p in missing)
    run = f": run <code>{escape(command)}</code>" if command else ""
    looked = f'<br><span class="note">looked for {files}</span>' if files else ""
    return f'<div class="missing"><strong>{escape(what)} not available yet</strong>{run}{looked}</div>'


def _shown(path) -> str:
    """``path`` relative to the working folder when it lies below it (shorter to read)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def shown_path(path) -> str:
    """How a report names a file, folder or model: relative to the working folder when below it, else its name
    alone (a shared report must not carry this machine's absolute paths); URIs (``models:/…``) as they are;
    several, joined by `` + ``."""
    if isinstance(path, (list, tuple)):
        return " + ".join(shown_path(p) for p in path)
    text = str(path)
    if ":/" in text or " + " in text:
        return " + ".join(shown_path(p) for p in text.split(" + ")) if " + " in text else text
    shown = _shown(text)
    return shown if not Path(shown).is_absolute() else Path(text).name


def _format_value(value, fmt: str | Callable | None) -> tuple[str, str]:
    """(display text, sort key) of one cell."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # numpy scalar -> Python number
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", ""
    if value is pd.NA or value is pd.NaT:
        return "", ""
    if callable(fmt):
        text = fmt(value)
    elif fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        text = format(value, fmt)
    elif isinstance(value, float):
        text = format_number(value)
    else:
        text = str(value)
    key = repr(float(value)) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)
    return text, key


def format_number(value: float) -> str:
    """Three significant digits, scientific notation below 0.001."""
    if value is None or not math.isfinite(value):
        return "" if value is None or math.isnan(value) else str(value)
    if value == 0:
        return "0"
    if abs(value) < 1e-3:
        return f"{value:.1e}"
    if abs(value) >= 1e5:
        return f"{value:.3g}"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3g}"


def table(
    frame,
    *,
    caption: str | None = None,
    formats: Mapping[str, str | Callable] | None = None,
    highlight: Callable[[str, object], bool] | None = None,
    sortable: bool = True,
    max_rows: int | None = None,
    index: bool = False,
    links: Mapping[str, Callable[[object], str | None]] | None = None,
) -> str:
    """A DataFrame as an HTML table.

    ``formats`` maps a column to a format spec (``".3f"``) or a function;
    ``highlight(column, value)`` marks a cell (e.g. p < 0.05); ``links`` maps a
    column to ``value -> href`` (None: no link), e.g. a patient to its report;
    rows beyond ``max_rows`` are left out with a note saying how many.
    """
    links = dict(links or {})
    if index:
        frame = frame.reset_index()
    formats = dict(formats or {})
    shown = frame if max_rows is None else frame.head(max_rows)
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f'<th scope="col" title="{"click to sort" if sortable else ""}">{escape(c)}</th>'
                   for c in frame.columns)
    rows = []
    for record in shown.itertuples(index=False, name=None):
        cells = []
        for column, value in zip(frame.columns, record):
            if hasattr(value, "item") and not isinstance(value, (str, bytes)):
                value = value.item()
            text, key = _format_value(value, formats.get(column))
            mark = ' class="hit"' if highlight is not None and text and highlight(column, value) else ""
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and text != ""
            align = ' data-num="1"' if numeric else ""
            href = links[column](value) if column in links and text else None
            shown = f'<a href="{escape(href)}">{escape(text)}</a>' if href else escape(text)
            cells.append(f'<td{mark}{align} data-sort="{escape(key)}">{shown}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    more = ""
    if max_rows is not None and len(frame) > max_rows:
        more = note(f"{len(frame) - max_rows} more row(s) not shown (full table in the CSV file).")
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return (f'<div class="table-wrap"><table{cls}>{cap}<thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table></div>{more}")


def key_values(items: Mapping[str, object] | Iterable[tuple[str, object]], *, caption: str | None = None) -> str:
    """A two-column table of names and values (not sortable)."""
    pairs = items.items() if isinstance(items, Mapping) else items
    rows = []
    for key, value in pairs:
        text = format_number(value) if isinstance(value, float) else ("" if value is None else str(value))
        rows.append(f'<tr><th scope="row">{escape(key)}</th><td>{escape(text)}</td></tr>')
    cap = f"<caption>{escape(caption)}</caption>" if caption else ""
    return f'<div class="table-wrap"><table class="kv">{cap}<tbody>{"".join(rows)}</tbody></table></div>'


def figure_png(figure, *, dpi: int = 90) -> bytes:
    """PNG bytes of a matplotlib figure (Agg canvas, no pyplot state)."""
    if figure.canvas is None or not isinstance(figure.canvas, FigureCanvasAgg):
        FigureCanvasAgg(figure)
    buffer = _io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return buffer.getvalue()


def image(source, *, caption: str | None = None, alt: str | None = None, dpi: int = 90,
          width: str | None = None) -> str:
    """A PNG file, PNG bytes or a matplotlib figure, embedded as a ``data:`` URI.

    A missing file gives the placeholder box instead of a broken image.
    """
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            return placeholder(f"figure {path.name}", missing=[path])
        data = path.read_bytes()
    elif isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        data = figure_png(source, dpi=dpi)
    encoded = base64.b64encode(data).decode("ascii")
    style = f' style="max-width:{escape(width)}"' if width else ""
    cap = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    return (f'<figure><img src="{DATA_URI_PREFIX}{encoded}" alt="{escape(alt or caption or "figure")}"{style}>'
            f"{cap}</figure>")


_CSS = """
:root { --fg:#1d2733; --muted:#5b6875; --accent:#0b5cad; --line:#d8dee4; --soft:#f5f7f9; --hit:#fde2dd; }
* { box-sizing: border-box; }
body { margin:0; font: 16px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color:var(--fg); background:#fff; }
.layout { display:flex; max-width: 1400px; margin: 0 auto; }
nav.toc { position: sticky; top:0; align-self:flex-start; width: 250px; flex: 0 0 250px; max-height:100vh;
          overflow:auto; padding: 24px 16px; border-right: 1px solid var(--line); font-size: 14px; }
nav.toc ol { padding-left: 18px; margin: 4px 0; } nav.toc li { margin: 3px 0; }
nav.toc a { color: var(--fg); text-decoration:none; } nav.toc a:hover { color: var(--accent); }
nav.toc .na { color: var(--muted); }
main { flex: 1 1 auto; min-width: 0; padding: 24px 40px 80px; max-width: 1100px; }
h1 { font-size: 28px; margin: 0 0 4px; } h2 { font-size: 23px; margin: 42px 0 10px; padding-top: 10px;
     border-top: 2px solid var(--line); } h3 { font-size: 18px; margin: 26px 0 8px; }
.subtitle, .note { color: var(--muted); } .note { font-size: 14px; }
code { background: var(--soft); padding: 1px 4px; border-radius: 3px; font-size: 90%; }
.table-wrap { overflow-x: auto; margin: 10px 0 14px; }
table { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums; }
caption { text-align:left; font-weight:600; padding: 4px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
td[data-num] { text-align: right; } thead th { background: var(--soft); position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th.asc::after { content: " \\25B2"; font-size: 10px; }
table.sortable thead th.desc::after { content: " \\25BC"; font-size: 10px; }
table.kv th { background: none; font-weight: 600; width: 40%; }
td.hit { background: var(--hit); font-weight: 600; }
figure { margin: 12px 0 20px; overflow-x: auto; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); cursor: zoom-in; }
figure.zoom img { max-width: none; cursor: zoom-out; }
figcaption { color: var(--muted); font-size: 14px; margin-top: 4px; }
.missing { border: 1px dashed #b8860b; background: #fff8e6; padding: 10px 14px; border-radius: 6px; margin: 10px 0; }
.statement { border-left: 4px solid var(--accent); background: var(--soft); padding: 8px 14px; margin: 10px 0; }
.cards { display:flex; flex-wrap: wrap; gap: 12px; margin: 12px 0; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 16px; min-width: 150px; }
.card .v { font-size: 24px; font-weight: 600; } .card .k { color: var(--muted); font-size: 13px; }
footer { margin-top: 60px; color: var(--muted); font-size: 13px; }
@media (max-width: 900px) { .layout { display:block; } nav.toc { position: static; width:auto; max-height:none;
  border-right: 0; border-bottom: 1px solid var(--line); } main { padding: 16px; } }
@media print { nav.toc { display:none; } }
"""

# Click a header to sort by that column (numbers numerically, blanks last); click a figure for full size.
_JS = """
document.querySelectorAll('figure img').forEach(function (img) {
  img.addEventListener('click', function () { img.parentNode.classList.toggle('zoom'); });
});
document.querySelectorAll('table.sortable').forEach(function (t) {
  t.querySelectorAll('thead th').forEach(function (th, i) {
    th.addEventListener('click', function () {
      var asc = !th.classList.contains('asc');
      t.querySelectorAll('thead th').forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = t.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[i].dataset.sort, y = b.cells[i].dataset.sort;
        if (x === '' || y === '') { return x === y ? 0 : (x === '' ? 1 : -1); }
        var nx = parseFloat(x), ny = parseFloat(y);
        var c = (!isNaN(nx) && !isNaN(ny) && a.cells[i].dataset.num) ? nx - ny : x.localeCompare(y);
        return asc ? c : -c;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"""

_H3 = re.compile(r'<h3 id="([^"]+)">(.*?)</h3>')


def cards(items: Mapping[str, object]) -> str:
    """Headline numbers as a row of small cards."""
    parts = []
    for key, value in items.items():
        text = format_number(value) if isinstance(value, float) else escape(value)
        parts.append(f'<div class="card"><div class="v">{text}</div><div class="k">{escape(key)}</div></div>')
    return f'<div class="cards">{"".join(parts)}</div>'


def render(title: str, sections: list[Section], *, subtitle: str = "", footer: str = "") -> str:
    """The complete page: title, table of contents, sections, inline CSS and JS."""
    toc = []
    for s in sections:
        subs = "".join(f'<li><a href="#{a}">{t}</a></li>' for a, t in _H3.findall("".join(s.blocks)))
        cls = "" if s.available else ' class="na"'
        toc.append(f'<li><a href="#{escape(s.id)}"{cls}>{escape(s.title)}</a>'
                   + (f"<ol>{subs}</ol>" if subs else "") + "</li>")
    body = "\n".join(f'<section id="{escape(s.id)}"><h2>{escape(s.title)}</h2>\n' + "\n".join(s.blocks)
                     + "</section>" for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style></head>
<body><div class="layout">
<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{"".join(toc)}</ol></nav>
<main><h1>{escape(title)}</h1><p class="subtitle">{escape(subtitle)}</p>
{body}
<footer>{footer}</footer></main></div>
<script>{_JS}</script></body></html>
"""
