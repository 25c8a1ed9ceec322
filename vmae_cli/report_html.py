"""The HTML of `vmae report`: one self-contained page (inline CSS, SVG charts written here,
frames as data URIs, a few lines of script for sorting and filtering). Nothing on the page
refers to the network; everything is readable without the script and printable.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from .results import LOW_CONFIDENCE_MARK

if TYPE_CHECKING:
    import pandas as pd

    from .report import LabelSection, ReportData, Shown

#: Bars of the label chart (the most frequent labels).
LABEL_CHART_BARS = 30
#: Bins of the score distribution chart.
SCORE_BINS = 20
#: Width of a timeline (pixels).
TIMELINE_WIDTH_PX = 640

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;
max-width:1200px;padding:0 16px 40px;color:#1b1b1b;background:#fff}
h1{font-size:24px;margin:18px 0 4px}h2{border-bottom:2px solid #ddd;margin-top:32px}
h3{margin:22px 0 6px;font-size:16px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:13px}
th,td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f4f4f4;cursor:pointer}td.num{text-align:right;font-variant-numeric:tabular-nums}
dl.prov{display:grid;grid-template-columns:max-content auto;gap:2px 14px;font-size:13px}
dl.prov dt{color:#555}dl.prov dd{margin:0;word-break:break-all}
nav{position:sticky;top:0;background:#fff;padding:6px 0;border-bottom:1px solid #eee;z-index:1}
nav a{margin-right:14px}nav input{margin-left:8px}
.video{margin:8px 0 14px;padding:6px;border:1px solid #e6e6e6;border-radius:4px;
break-inside:avoid}
.strip{display:flex;flex-wrap:wrap;gap:2px}.strip figure{margin:0;text-align:center}
.strip img{display:block;height:72px}.strip figcaption{font-size:10px;color:#666}
.meta{font-size:12px;color:#333;word-break:break-all}.pick{color:#666}
.problem{color:#9a3412}.note{color:#555;font-style:italic}
.charts{display:flex;flex-wrap:wrap;gap:24px}
ul.legend{list-style:none;padding:0;margin:4px 0 8px;display:flex;flex-wrap:wrap;
gap:2px 14px;font-size:12px}.swatch{display:inline-block;width:11px;height:11px;
margin-right:4px;vertical-align:-1px;border:1px solid #0003;
-webkit-print-color-adjust:exact;print-color-adjust:exact}
svg text{font:11px system-ui,sans-serif;fill:#333}
@media print{nav{display:none}.video{page-break-inside:avoid}th{cursor:auto}}
"""

SCRIPT = """
document.querySelectorAll('th').forEach(function(th){th.addEventListener('click',function(){
var t=th.closest('table'),i=Array.prototype.indexOf.call(th.parentNode.children,th),
b=t.tBodies[0],r=Array.prototype.slice.call(b.rows),d=th.dataset.d==='1'?-1:1;th.dataset.d=d===1?'1':'0';
r.sort(function(x,y){var a=x.cells[i].textContent,c=y.cells[i].textContent,
p=parseFloat(a),q=parseFloat(c);return(isNaN(p)||isNaN(q)?a.localeCompare(c):p-q)*d;});
r.forEach(function(x){b.appendChild(x);});});});
var f=document.getElementById('filter');if(f){f.addEventListener('input',function(){
var v=f.value.toLowerCase();document.querySelectorAll('section.label').forEach(function(s){
s.style.display=s.dataset.label.toLowerCase().indexOf(v)>=0?'':'none';});});}
"""


def render(data: ReportData) -> str:
    """The whole page."""
    e = html.escape
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(data.title)}</title><style>{STYLE}</style></head><body>",
        f"<h1>{e(data.title)}</h1>",
        f"<p>{data.rows} rows from {len(data.sources)} file(s).</p>",
        _provenance(data.provenance),
        '<nav><a href="#summary">Summary</a><a href="#labels">Labels</a>'
        '<a href="#failures">Failures</a>'
        '<label>filter labels<input id="filter" type="search" placeholder="label"></label></nav>',
        '<section id="summary"><h2>Summary</h2>',
        "<h3>By status</h3>",
        table(data.by_status),
        '<div class="charts">',
        label_chart(data.by_label, data.colours),
        score_chart(data.scores),
        "</div>",
        "<h3>By label (ok videos)</h3>",
        table(data.by_label),
        f"<h3>By folder (depth {data.folder_depth})</h3>",
        table(data.by_folder),
        "</section>",
        '<section id="labels"><h2>Labels</h2>',
        '<p class="note">For each label, the videos with the highest and the lowest scores, '
        "each with the frames the model saw (decoded again from the row's frame indices)"
        + (" and its timeline of windows" if data.segmented else "")
        + f". Colours: the {len(PALETTE)} most frequent labels have one each, as below.</p>",
        legend(data.colours, no_label=data.segmented or LOW_CONFIDENCE_MARK in data.colours),
        *(label_section(section, i, data.colours) for i, section in enumerate(data.labels)),
        "</section>",
        '<section id="failures"><h2>Failures</h2>',
        failures(data.failures, data.failure_counts),
        "</section>",
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _provenance(info: dict[str, str]) -> str:
    e = html.escape
    items = "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in info.items())
    return f'<dl class="prov">{items}</dl>'


def table(frame: pd.DataFrame) -> str:
    """A DataFrame as an HTML table (numbers right-aligned, scores to 3 decimals)."""
    e = html.escape
    if frame.empty:
        return '<p class="note">(none)</p>'
    head = "".join(f"<th>{e(str(c))}</th>" for c in frame.columns)
    body = []
    for row in frame.itertuples(index=False):
        cells = []
        for value in row:
            if isinstance(value, float):
                text = "" if math.isnan(value) else f"{value:.3f}"
                cells.append(f'<td class="num">{text}</td>')
            elif isinstance(value, int) and not isinstance(value, bool):
                cells.append(f'<td class="num">{value}</td>')
            else:
                cells.append(f"<td>{e(str(value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


#: Colours for telling labels apart, most distinct first: picked greedily, each the sRGB colour
#: (of a 16-step grid, lightness 38-80, chroma 35-85 in CIELAB) farthest from those before it
#: and from white, the greys below and near-black. Any two differ by at least 31 CIELAB units
#: (a hue hashed per label put 1 pair in 18 within 10 degrees: 203 vs 206). The most
#: frequent labels get them in order, so the page's main labels never share a colour.
PALETTE = (
    "#CC0011", "#AA11AA", "#66CC33", "#EEAA00", "#0088FF",
    "#00DDBB", "#FF6699", "#556600", "#00CCFF", "#EEAAFF",
    "#CC7755", "#884477", "#AACC88", "#117755", "#006699",
    "#5544CC", "#FF7711", "#BBCC00", "#00AA55", "#CCAA55",
)  # fmt: skip
#: The colour of every label beyond the palette's (a page of 400 labels shows its 20 most
#: frequent in colour, the rest as one grey, named in tooltips and tables).
OTHER_COLOUR = "#8C8C8C"
#: The colour of a window without a label: below ``--min-score``, or failed.
NO_LABEL_COLOUR = "#DDDDDD"
#: What the legend calls the labels beyond the palette, and windows without a label.
OTHER_NAME = "other labels"
NO_LABEL_NAME = "low confidence or failed"


def label_colours(labels: Iterable[str]) -> dict[str, str]:
    """Labels, most frequent first -> their colours on the page: :data:`PALETTE` in order for
    the first ones, :data:`OTHER_COLOUR` for the rest (a label listed twice keeps its first
    colour). ``(low confidence)`` has :data:`NO_LABEL_COLOUR`."""
    colours: dict[str, str] = {}
    free = iter(PALETTE)
    for label in labels:
        if label in colours:
            continue
        if label in ("", LOW_CONFIDENCE_MARK):
            colours[label] = NO_LABEL_COLOUR
            continue
        colours[label] = next(free, OTHER_COLOUR)
    return colours


def colour(colours: dict[str, str], label: str) -> str:
    """The colour of ``label`` on a page whose labels have ``colours``."""
    return colours.get(label, OTHER_COLOUR)


def legend(colours: dict[str, str], *, no_label: bool = False) -> str:
    """The labels with colours of their own and their swatches, then one swatch for all the
    others (when some have none) and, with ``no_label``, one for windows without a label."""
    e = html.escape
    own = [(label, c) for label, c in colours.items() if c not in (OTHER_COLOUR, NO_LABEL_COLOUR)]
    others = sum(1 for c in colours.values() if c == OTHER_COLOUR)
    items = [(e(label), c) for label, c in own]
    if others:
        items.append((f"<i>{others} {OTHER_NAME}</i>", OTHER_COLOUR))
    if no_label:
        items.append((f"<i>{NO_LABEL_NAME}</i>", NO_LABEL_COLOUR))
    if not items:
        return ""
    swatches = "".join(
        f'<li><span class="swatch" style="background:{c}"></span>{name}</li>' for name, c in items
    )
    return f'<ul class="legend" aria-label="label colours">{swatches}</ul>'


def label_chart(labels: pd.DataFrame, colours: dict[str, str]) -> str:
    """Horizontal bars: ok videos of the most frequent labels, in their colours."""
    e = html.escape
    top = labels.head(LABEL_CHART_BARS)
    if top.empty:
        return ""
    bar_h, left, width = 16, 180, 260
    most = max(int(top["videos"].max()), 1)
    height = bar_h * len(top) + 24
    items = []
    for i, (label, count) in enumerate(zip(top["label"], top["videos"], strict=True)):
        y = 18 + i * bar_h
        w = max(1.0, width * int(count) / most)
        name = str(label) if len(str(label)) <= 28 else str(label)[:27] + "…"
        items.append(
            f'<text x="{left - 6}" y="{y + 11}" text-anchor="end">{e(name)}</text>'
            f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{bar_h - 4}" '
            f'fill="{colour(colours, str(label))}">'
            f"<title>{e(str(label))}: {int(count)}</title></rect>"
            f'<text x="{left + w + 4:.1f}" y="{y + 11}">{int(count)}</text>'
        )
    title = f"ok videos per label (the {len(top)} most frequent)"
    return (
        f'<svg role="img" aria-label="{e(title)}" width="{left + width + 60}" height="{height}">'
        f'<text x="0" y="12">{e(title)}</text>{"".join(items)}</svg>'
    )


def score_chart(scores: Sequence[float]) -> str:
    """A histogram of the ok videos' top-1 scores, in SCORE_BINS bins over [0, 1], its count
    axis marked 0 at the baseline and the largest count level with the tallest bar's top."""
    import numpy as np

    e = html.escape
    if not len(scores):
        return ""
    # Counted by numpy: ten million scores in a moment (int() truncates as astype does).
    bins = np.clip((np.asarray(scores, dtype=float) * SCORE_BINS).astype(np.int64), 0, None)
    counts = np.bincount(np.minimum(bins, SCORE_BINS - 1), minlength=SCORE_BINS).tolist()
    width, height, left, top, bottom = 370, 204, 40, 42, 36
    base = height - bottom  # the baseline: a count of 0
    plot_h = base - top
    bar_w = (width - left) / SCORE_BINS
    most = max(counts) or 1
    bars = []
    for i, n in enumerate(counts):
        h = plot_h * n / most
        x = left + i * bar_w
        lo, hi = i / SCORE_BINS, (i + 1) / SCORE_BINS
        bars.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{bar_w - 1:.1f}" '
            f'height="{h:.1f}" fill="#4e79a7"><title>{lo:.2f}-{hi:.2f}: {n}</title></rect>'
        )
    # The count axis: 0, the middle when there is room for it, and the largest count, each
    # at its height (a lone number at the baseline read as "11 at zero").
    marks = sorted({0, most, *([most // 2] if most >= 4 else [])})
    axis = [f'<line x1="{left - 3}" y1="{top}" x2="{left - 3}" y2="{base}" stroke="#999"/>']
    for m in marks:
        y = base - plot_h * m / most
        axis.append(
            f'<line x1="{left - 7}" y1="{y:.1f}" x2="{left - 3}" y2="{y:.1f}" stroke="#999"/>'
            f'<text class="count" x="{left - 9}" y="{y + 4:.1f}" text-anchor="end">{m}</text>'
        )
    axis.append(f'<text x="2" y="{top - 10}">videos</text>')  # the count axis's unit
    ticks = "".join(
        f'<text x="{left + t * (width - left):.1f}" y="{base + 14}" '
        f'text-anchor="middle">{t:g}</text>'
        for t in (0.0, 0.25, 0.5, 0.75, 1.0)
    )
    middle = left + (width - left) / 2
    ticks += f'<text x="{middle:.1f}" y="{height - 4}" text-anchor="middle">top-1 score</text>'
    title = f"top-1 score of the {len(scores)} ok videos"
    return (
        f'<svg class="scores" role="img" aria-label="{e(title)}" width="{width + 10}" '
        f'height="{height}"><text x="0" y="12">{e(title)}</text>{"".join(bars)}'
        f"{''.join(axis)}{ticks}</svg>"
    )


def label_section(section: LabelSection, number: int, colours: dict[str, str]) -> str:
    """One label: its count and its sampled videos."""
    e = html.escape
    parts = [
        f'<section class="label" id="label-{number}" data-label="{e(section.label)}">',
        f"<h3>{e(section.label)} <small>({section.videos} video"
        f"{'s' if section.videos != 1 else ''})</small></h3>",
    ]
    if section.left_out:
        parts.append(
            '<p class="note">Frames left out to keep the report under its size limit '
            "(--max-mb).</p>"
        )
    parts += [video(s, colours) for s in section.shown]
    parts.append("</section>")
    return "".join(parts)


def video(shown: Shown, colours: dict[str, str]) -> str:
    """One sampled video: its frames, what its row says, its timeline."""
    e = html.escape
    row, strip = shown.row, shown.strip
    indices = " ".join(str(i) for i in (strip.indices if strip else []))
    parts = [
        f'<div class="video" data-path="{e(str(row["path"]))}" data-frame-indices="{indices}">'
    ]
    if strip is not None and strip.jpegs:
        frames = "".join(
            f'<figure><img src="{uri}" alt="frame {i}" title="frame {i}">'
            f"<figcaption>{i}</figcaption></figure>"
            for i, uri in zip(strip.indices, strip.data_uris(), strict=True)
        )
        parts.append(f'<div class="strip">{frames}</div>')
    elif strip is not None and strip.problem:
        parts.append(f'<p class="problem">frames not shown: {e(strip.problem)}</p>')
    score = _number(row.get("score"))
    best = "; ".join(f"{e(label)} {s:.3f}" for label, s in row.get("top_k", [])[:5])
    parts.append(
        f'<p class="meta"><b>{e(str(row["path"]))}</b><br>score {score} '
        f'<span class="pick">({shown.pick} of its label)</span>'
        + (f"<br>top-k: {best}" if best else "")
        + "</p>"
    )
    if shown.windows:
        parts.append(timeline(shown.windows, colours))
    parts.append("</div>")
    return "".join(parts)


def _number(value: Any) -> str:
    try:
        return f"{float(value):.3f}"
    except (TypeError, ValueError):
        return ""


def timeline(windows: list[dict[str, Any]], colours: dict[str, str]) -> str:
    """A strip of a video's windows coloured by their top-1 label, times on the axis, and
    the legend of the labels it shows."""
    e = html.escape
    spans = []
    for w in windows:
        try:
            start, end = float(w.get("start_s")), float(w.get("end_s"))
        except (TypeError, ValueError):
            start, end = float(w.get("start_frame") or 0), float(w.get("end_frame") or 0)
        spans.append((start, max(end, start), str(w.get("label") or ""), w))
    if not spans:
        return ""
    t0 = min(s for s, _, _, _ in spans)
    t1 = max(t for _, t, _, _ in spans)
    scale = TIMELINE_WIDTH_PX / (t1 - t0 or 1.0)
    rects = []
    unlabelled = False
    for start, end, label, w in spans:
        x = (start - t0) * scale
        width = max(1.0, (end - start) * scale)
        shown = label or LOW_CONFIDENCE_MARK
        labelled = bool(label) and w.get("status", "ok") == "ok"
        unlabelled = unlabelled or not labelled
        fill = colour(colours, label) if labelled else NO_LABEL_COLOUR
        rects.append(
            f'<rect x="{x:.1f}" y="14" width="{width:.1f}" height="16" fill="{fill}">'
            f"<title>{start:.1f}-{end:.1f} s: {e(shown)} {_number(w.get('score'))}</title></rect>"
        )
    ticks = "".join(
        f'<text x="{f * TIMELINE_WIDTH_PX:.1f}" y="44" text-anchor="{a}">'
        f"{t0 + f * (t1 - t0):.1f} s</text>"
        for f, a in ((0.0, "start"), (0.5, "middle"), (1.0, "end"))
    )
    # This timeline's labels, in the page's order (most frequent first), with their colours.
    here = {label for _, _, label, w in spans if label and w.get("status", "ok") == "ok"}
    ordered = [label for label in colours if label in here]
    ordered += sorted(here.difference(ordered))
    mine = {label: colour(colours, label) for label in ordered}
    return (
        f'<svg class="timeline" role="img" aria-label="timeline of {len(spans)} windows" '
        f'width="{TIMELINE_WIDTH_PX + 10}" height="48"><text x="0" y="10">timeline: '
        f"{len(spans)} windows</text>{''.join(rects)}{ticks}</svg>"
        + legend(mine, no_label=unlabelled)
    )


def failures(shown: dict[str, list[tuple[str, str]]], counts: dict[str, int]) -> str:
    """The failed videos by status, with their errors."""
    e = html.escape
    if not counts:
        return '<p class="note">No failures.</p>'
    parts = []
    for status, n in sorted(counts.items()):
        listed = shown.get(status, [])
        parts.append(f'<h3 id="failed-{e(status)}">{e(status)} <small>({n})</small></h3>')
        rows = "".join(f"<tr><td>{e(p)}</td><td>{e(err)}</td></tr>" for p, err in listed)
        parts.append(
            f"<table><thead><tr><th>path</th><th>error</th></tr></thead><tbody>{rows}"
            "</tbody></table>"
        )
        if n > len(listed):
            parts.append(
                f'<p class="note">and {n - len(listed)} more (`vmae summarize --by failed` '
                "lists them all).</p>"
            )
    return "".join(parts)
