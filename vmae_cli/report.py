"""`vmae report`: one self-contained HTML page that shows what the model saw and what it said.

It reads the rows of one or more runs (and, with ``--segments``, their window rows), counts
them as ``vmae summarize`` does (:mod:`vmae_cli.summary`: one implementation), samples the
videos of each label (the highest and the lowest scores), decodes again the exact frames each
sampled row says the model saw (the same frame-exact decoders, in the same crash- and
timeout-proof worker pool as ``vmae classify``), and writes one HTML file
(:mod:`vmae_cli.report_html`) with the frames embedded as small JPEG data URIs.

The page never grows with the number of rows beyond its tables' caps: frame strips are added
label after label (most frequent first) only while the file stays under ``max_bytes``;
failures are listed up to :data:`FAILURES_SHOWN` per status. A video whose size or
modification time differ from its row's (or a row that records neither) is shown without
frames, not decoded differently, and only files FFmpeg takes for a video container and codec
(:data:`~vmae_cli.decoding.VIDEO_CONTAINERS`, :data:`~vmae_cli.decoding.VIDEO_CODECS`) are
decoded: a row may name any file.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .choices import DEFAULT_REPORT_MAX_BYTES, DEFAULT_REPORT_PER_LABEL, DEFAULT_REPORT_TIMEOUT_S
from .errors import VmaeError
from .identity import cell_path
from .output import write_text_aside
from .results import DecodeOutcome, Failure, VideoViews, file_stamp
from .summary import read_results

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

#: Videos shown per label, the size a report stays under (bytes) and the seconds a video may
#: take to decode, when not given: their one home is `choices` (what `vmae --help` imports).
DEFAULT_PER_LABEL = DEFAULT_REPORT_PER_LABEL
DEFAULT_MAX_BYTES = DEFAULT_REPORT_MAX_BYTES
DEFAULT_TIMEOUT_S = DEFAULT_REPORT_TIMEOUT_S
#: Height of a frame in a strip (pixels): big enough to tell what happens.
THUMB_HEIGHT_PX = 72
#: The most frames one strip shows (a clip of 16 shows all; 5 clips x 3 crops, 80 indices,
#: show this many spread over them).
STRIP_FRAMES_MAX = 16
#: JPEG quality of the frames (OpenCV's 0-100 scale).
JPEG_QUALITY = 70
#: Failed rows listed per status (the others are counted).
FAILURES_SHOWN = 200
#: Rows of the folder table at most.
FOLDERS_SHOWN = 200
#: The columns kept of every row (the others are read again for the shown videos only): a
#: report over a million rows holds these short cells, not the rows' top-k and frames. The
#: file's stamp (``size_bytes``, ``mtime_ns``) is read again too: a table's column of 19-digit
#: integers with one empty cell becomes floats, which cannot hold them exactly.
TABLE_COLUMNS = (
    "path",
    "status",
    "error",
    "label",
    "score",
    "frames_decoded",
    "model",
    "model_revision",
    "labels_from",
    "protocol",
    "windows",
)
#: The columns that say which file a row was classified from: its size and modification
#: time then. A file whose stamp differs, or a row without one, gets no frames.
STAMP_COLUMNS = ("size_bytes", "mtime_ns")


class ReportError(VmaeError, ValueError):
    """A report that cannot be made (its inputs are not vmae's rows, ...); one line."""


@dataclass
class ReportOptions:
    """How a report is made."""

    per_label: int = DEFAULT_PER_LABEL
    max_bytes: int = DEFAULT_MAX_BYTES
    workers: int | None = None  # decoding processes (None: one per core)
    timeout_s: float | None = DEFAULT_TIMEOUT_S
    folder_depth: int = 1
    title: str = "vmae report"


@dataclass
class Strip:
    """The frames a row says the model saw, decoded again: JPEG bytes per shown frame, or why
    they are not shown."""

    indices: list[int]  # the frame numbers shown (at most STRIP_FRAMES_MAX)
    jpegs: list[bytes] = field(default_factory=list)
    problem: str = ""  # not empty: why no frames are shown

    @property
    def bytes(self) -> int:
        """What the strip adds to the page (base64 grows JPEG by a third)."""
        return sum(len(j) for j in self.jpegs) * 4 // 3 + 100 * len(self.jpegs)

    def data_uris(self) -> list[str]:
        """The frames as ``data:image/jpeg;base64,...`` URIs."""
        return ["data:image/jpeg;base64," + base64.b64encode(j).decode() for j in self.jpegs]


@dataclass
class Shown:
    """One sampled video: its row, why it was picked, its strip and its windows."""

    row: dict[str, Any]
    pick: str  # "highest" or "lowest" score of its label
    strip: Strip | None = None
    windows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LabelSection:
    """One label: how many ok videos have it, and those shown."""

    label: str
    videos: int
    shown: list[Shown]
    left_out: bool = False  # strips dropped to stay under the size limit


@dataclass
class ReportData:
    """Everything the page shows (``report_html.render`` turns it into HTML)."""

    title: str
    rows: int
    sources: list[str]
    provenance: dict[str, str]
    by_status: pd.DataFrame
    by_label: pd.DataFrame
    by_folder: pd.DataFrame
    folder_depth: int
    scores: Sequence[float]  # the ok rows' top-1 scores (for the distribution chart)
    labels: list[LabelSection]
    failures: dict[str, list[tuple[str, str]]]  # status -> (path, error), capped
    failure_counts: dict[str, int]
    segmented: bool
    max_bytes: int
    colours: dict[str, str] = field(default_factory=dict)  # label -> colour, on every chart


@dataclass
class ReportStats:
    """What :func:`build_report` made."""

    output: str
    rows: int
    labels: int
    strips: int  # videos shown with their frames
    labels_with_strips: int
    left_out: int  # labels whose strips were dropped to stay under the size limit
    bytes: int
    seconds: float


def build_report(
    results: Iterable[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    segments: Iterable[str | os.PathLike[str]] = (),
    run_summary: str | os.PathLike[str] | None = None,
    options: ReportOptions | None = None,
    on_total: Callable[[int], None] | None = None,
    on_strip: Callable[[], None] | None = None,
    on_notice: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> ReportStats:
    """Write the HTML report of the rows in ``results`` (vmae's CSV, JSONL or Parquet outputs) to
    ``output``; ``segments`` are the window rows of those runs (``--segments-out`` files),
    ``run_summary`` a ``vmae classify --summary`` file (engine, runtime, date).

    ``on_total(n)`` is told how many videos will be decoded, ``on_strip()`` after each;
    ``on_notice(line)`` that an older output's relative paths are read from this folder.
    Raises :class:`~vmae_cli.summary.SummaryError` for inputs that are not vmae's rows and
    :class:`OSError` when the output cannot be written; a video that cannot be decoded again
    is shown with its reason, never raised.
    """
    from .report_html import render

    started = time.perf_counter()
    opts = options or ReportOptions()
    sources = [os.fspath(p) for p in results]
    rows = read_results(sources, TABLE_COLUMNS, on_notice=on_notice)
    data = _summarise(rows, sources, opts, run_summary)
    del rows  # the counts are made; the shown rows' details are read again below
    shown = [s for section in data.labels for s in section.shown]
    details = read_details(sources, {s.row["path"] for s in shown})
    for s in shown:
        extra = details.get(s.row["path"], {})
        s.row["frame_indices"] = parse_indices(extra.get("frame_indices"))
        s.row["top_k"] = _top_k(extra)
        for key in STAMP_COLUMNS:
            s.row[key] = extra.get(key)
    if on_total is not None:
        on_total(len(shown))
    windows = read_windows(segments, {s.row["path"] for s in shown})
    for s in shown:
        s.windows = windows.get(s.row["path"], [])
        if not s.row["frame_indices"] and s.windows:
            # A segmented video's row names no frames: show a frame of each window.
            s.row["frame_indices"] = window_frames(s.windows)
    data.colours = colour_order(data.by_label, [w for s in shown for w in s.windows])
    strips = decode_strips(
        [s.row for s in shown],
        workers=opts.workers,
        timeout_s=opts.timeout_s,
        stop=stop,
        on_done=on_strip,
    )
    for s in shown:
        s.strip = strips.get(s.row["path"])
    html = _fit(data, render)
    target = os.fspath(output)
    write_text_aside(target, html)  # a browser reloading it never sees half a page
    with_strips = [sec for sec in data.labels if any(s.strip and s.strip.jpegs for s in sec.shown)]
    return ReportStats(
        output=target,
        rows=data.rows,
        labels=len(data.by_label),
        strips=sum(1 for s in shown if s.strip and s.strip.jpegs),
        labels_with_strips=len(with_strips),
        left_out=sum(1 for sec in data.labels if sec.left_out),
        bytes=len(html.encode()),
        seconds=time.perf_counter() - started,
    )


def colour_order(by_label: pd.DataFrame, windows: list[dict[str, Any]]) -> dict[str, str]:
    """The colour of each label on the page (:func:`~vmae_cli.report_html.label_colours`),
    given most frequent first: the videos' labels as counted (``by_label``), then labels only
    the shown windows have, by their windows."""
    from collections import Counter

    from .report_html import label_colours

    ok = [str(w.get("label") or "") for w in windows if w.get("status", "ok") == "ok"]
    in_windows = [label for label, _ in Counter(ok).most_common() if label]
    return label_colours([*map(str, by_label["label"]), *in_windows])


def _fit(data: ReportData, render: Callable[[ReportData], str]) -> str:
    """The page, with the strips of the least frequent labels dropped (last first) until it
    is under ``data.max_bytes``."""
    html = render(data)
    sections = [sec for sec in data.labels if sec.shown]
    while len(html.encode()) > data.max_bytes and sections:
        # Drop about as many strip bytes as the page is over, from the end.
        over = len(html.encode()) - data.max_bytes
        while sections and over > 0:
            section = sections.pop()
            over -= sum(s.strip.bytes for s in section.shown if s.strip)
            section.shown = []
            section.left_out = True
        html = render(data)
    return html


def _summarise(
    rows: pd.DataFrame,
    sources: list[str],
    opts: ReportOptions,
    run_summary: str | os.PathLike[str] | None,
) -> ReportData:
    """The counts (as `vmae summarize`), the sampled videos per label, and the failures."""
    import numpy as np

    from .summary import by_folder, by_label, by_status, failed

    ok = (rows["status"] == "ok").to_numpy()
    labels_table = by_label(rows)
    members = _members(rows, ok)  # labels emptied by --min-score as "(low confidence)"
    # Strips for the most frequent labels first, within a budget estimated per strip; the
    # page is trimmed to the exact limit once it is rendered.
    budget = max(0, opts.max_bytes - _page_estimate(rows))
    per_strip = STRIP_FRAMES_MAX * THUMB_BYTES_ESTIMATE
    sections = []
    for label, count in zip(labels_table["label"], labels_table["videos"], strict=True):
        picked = _sample(rows, members.get(label), opts.per_label) if budget >= per_strip else []
        budget -= per_strip * len(picked)
        sections.append(
            LabelSection(str(label), int(count), picked, left_out=not picked and bool(count))
        )
    failures: dict[str, list[tuple[str, str]]] = {}
    counts: dict[str, int] = {}
    for status, group in failed(rows).groupby("status", sort=True):
        counts[str(status)] = len(group)
        failures[str(status)] = [
            (str(p), str(e))
            for p, e in zip(
                group["path"][:FAILURES_SHOWN], group["error"][:FAILURES_SHOWN], strict=True
            )
        ]
    folders = by_folder(rows, opts.folder_depth) if len(rows) else by_folder(rows)
    scores = np.asarray(rows["score"], dtype=float)[ok]
    return ReportData(
        title=opts.title,
        rows=len(rows),
        sources=sources,
        provenance=_provenance(rows, sources, run_summary),
        by_status=by_status(rows),
        by_label=labels_table,
        by_folder=folders.head(FOLDERS_SHOWN),
        folder_depth=opts.folder_depth,
        scores=scores[~np.isnan(scores)],
        labels=sections,
        failures=failures,
        failure_counts=counts,
        segmented=_segmented(rows),
        max_bytes=opts.max_bytes,
    )


def _members(rows: pd.DataFrame, ok: np.ndarray) -> dict[str, np.ndarray]:
    """The positions of the ok rows of each label (``(low confidence)`` for an emptied one),
    in the rows' order: one sort of the labels' codes, not a pass over the rows per label."""
    import numpy as np

    from .summary import codes_of, low_confidence

    at = np.flatnonzero(ok)
    codes, names = codes_of(low_confidence(rows["label"].iloc[at]))
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    found = {}
    for part in np.split(order, bounds):
        if len(part) and codes[part[0]] >= 0:
            found[str(names[codes[part[0]]])] = at[part]
    return found


def _segmented(rows: pd.DataFrame) -> bool:
    """Whether some row has a window count (a run with ``--segments``)."""
    from .summary import distinct

    return "windows" in rows and any(len(str(v)) for v in distinct(rows["windows"]))


#: Bytes a shown frame adds to the page, for the budget before decoding: 2.2 KB measured per
#: frame (96x72 JPEG at quality 70, base64, its tags) on generated clips, a little more for
#: real footage. An underestimate costs nothing: the page is trimmed to its limit after.
THUMB_BYTES_ESTIMATE = 2560


def _page_estimate(rows: pd.DataFrame) -> int:
    """Bytes of the page without strips: tables, failures, charts (an upper estimate)."""
    failures = min(int((rows["status"] != "ok").sum()), FAILURES_SHOWN * 12)
    return 200_000 + failures * 400


def _sample(rows: pd.DataFrame, members: np.ndarray | None, per_label: int) -> list[Shown]:
    """The ``per_label`` videos of one label (the rows at ``members``) to show: half with the
    highest scores, the rest with the lowest (each once), highest first; among equal scores
    by path (then the rows' order)."""
    if per_label <= 0 or members is None or not len(members):
        return []
    top = min((per_label + 1) // 2, len(members))
    bottom = min(per_label - top, len(members) - top)
    highest, lowest = _ends(rows, members, top, bottom)
    records = _ok_records(rows, [*highest, *lowest])
    picked = [Shown(_record(r), "highest") for r in records[: len(highest)]]
    picked += [Shown(_record(r), "lowest") for r in records[len(highest) :]]
    return picked


def _ok_records(rows: pd.DataFrame, at: list[int]) -> list[dict[str, Any]]:
    """The ok rows at positions ``at`` as dicts, an emptied label as ``(low confidence)``."""
    import numpy as np
    import pandas as pd

    from .results import LOW_CONFIDENCE_MARK
    from .summary import rows_at

    positions = np.asarray(at, dtype=np.int64)
    columns = {c: rows_at(rows[c], positions).to_numpy() for c in rows.columns}
    records = pd.DataFrame(columns).to_dict("records")
    for r in records:
        if r.get("label") == "":
            r["label"] = LOW_CONFIDENCE_MARK
    return records


def _ends(
    rows: pd.DataFrame, members: np.ndarray, first: int, last: int
) -> tuple[list[int], list[int]]:
    """The positions of the ``first`` and of the ``last`` rows of ``members`` in the order
    score (highest first, none last), path, position, each in that order: what sorting the
    members by score and path gives, found without sorting a label of ten million rows (a
    partition by score; the paths of the rows tied at the edge compared by Arrow, a block at
    a time)."""
    import numpy as np

    from .summary import rows_at

    key = -np.asarray(rows["score"], dtype=float)[members]
    key[np.isnan(key)] = np.inf  # no score: after every score
    paths = rows["path"]

    def end(count: int, head: bool) -> list[int]:
        if count <= 0:
            return []
        at = count - 1 if head else len(key) - count
        edge = np.partition(key, at)[at]
        sure = members[key < edge] if head else members[key > edge]
        tied = members[key == edge]
        chosen = [*sure.tolist(), *_by_path(paths, tied, count - len(sure), smallest=head)]
        scores = key[np.searchsorted(members, chosen)].tolist()  # members are in order
        # A path that is not text (none) after every path, as pandas sorts it.
        texts = [
            (not isinstance(t, str), t if isinstance(t, str) else "")
            for t in rows_at(paths, np.asarray(chosen, dtype=np.int64))
        ]
        return [i for _, _, i in sorted(zip(scores, texts, chosen, strict=True))]

    return end(first, True), end(last, False)


#: Tied rows whose paths :func:`_by_path` compares at once.
PATH_BLOCK_ROWS = 1 << 18


def _by_path(paths: pd.Series, at: np.ndarray, count: int, *, smallest: bool) -> list[int]:
    """The ``count`` positions of ``at`` whose (path, position) are the smallest (or the
    largest), by Arrow's selection a block at a time: memory holds a block's paths."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if count <= 0:
        return []
    if count >= len(at):
        return at.tolist()
    from .summary import arrow_text, take_text

    text = arrow_text(paths)
    order = "ascending" if smallest else "descending"
    best = None
    for start in range(0, len(at), PATH_BLOCK_ROWS):
        block = at[start : start + PATH_BLOCK_ROWS]
        table = pa.table({"path": take_text(text, block), "at": pa.array(block)})
        if best is not None:
            table = pa.concat_tables([best, table])
        keep = pc.select_k_unstable(table, count, sort_keys=[("path", order), ("at", order)])
        best = table.take(keep)
    return best.column("at").to_pylist() if best is not None else []


def _record(row: dict[str, Any]) -> dict[str, Any]:
    """A row as the page and the decoder need it (its frames and top-k come later:
    :func:`read_details`)."""
    return {**row, "frame_indices": [], "top_k": []}


def read_details(sources: Iterable[str], paths: set[str]) -> dict[str, dict[str, Any]]:
    """The whole rows of ``paths`` (the newest per path), read again from the outputs; the
    other rows are skipped as they are read."""
    found: dict[str, dict[str, Any]] = {}
    for source in sources:
        for row in _rows_of(source, paths):
            found[row["path"]] = row
    return found


def parse_indices(value: Any) -> list[int]:
    """A row's ``frame_indices``: a list (JSONL) or space-separated numbers (CSV)."""
    if isinstance(value, (list, tuple)):
        return [int(v) for v in value]
    if isinstance(value, str):
        return [int(v) for v in value.split() if v.lstrip("-").isdigit()]
    return []


def _top_k(row: dict[str, Any]) -> list[tuple[str, float]]:
    """A row's best labels with their scores (JSONL ``top_k``, or CSV ``label_i``/``score_i``)."""
    given = row.get("top_k")
    if isinstance(given, list):
        return [(str(x.get("label", "")), float(x.get("score") or 0.0)) for x in given]
    found = []
    i = 1
    while f"label_{i}" in row:
        label, score = row.get(f"label_{i}"), row.get(f"score_{i}")
        if label not in (None, "") and score not in (None, ""):
            found.append((str(label), float(score)))
        i += 1
    return found


def _provenance(
    rows: pd.DataFrame, sources: list[str], run_summary: str | os.PathLike[str] | None
) -> dict[str, str]:
    """Model, revision, protocol (as the rows say), engine and dates, vmae's version."""
    from . import __version__
    from .summary import distinct

    def values(column: str) -> str:
        if column not in rows:
            return "not recorded"
        found = sorted({str(v) for v in distinct(rows[column]) if str(v)})
        return ", ".join(found) or "not recorded"

    info = {
        "model": values("model"),
        "model revision": values("model_revision"),
        # Only where the labels were not the checkpoint's own (text labels, a fitted head).
        **({"labels from": values("labels_from")} if "labels_from" in rows else {}),
        "protocol": values("protocol"),
        "rows from": ", ".join(_stamped(p) for p in sources),
        "report made": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "vmae": __version__,
    }
    if run_summary is not None:
        try:
            with open(run_summary, encoding="utf-8") as f:
                run = json.load(f)
        except (OSError, ValueError) as exc:
            raise ReportError(
                f"cannot read the run summary {run_summary}: {exc}",
                options=("run_summary",),
                path=str(run_summary),
            ) from None
        for key in ("engine", "runtime", "started", "finished", "elapsed_s"):
            if run.get(key) is not None:
                info[f"run {key.replace('_', ' ')}"] = str(run[key])
    else:
        info["engine"] = "not recorded in the rows (give --summary FILE.json of the run)"
    return info


def _stamped(path: str) -> str:
    try:
        when = datetime.fromtimestamp(os.stat(path).st_mtime, timezone.utc)
    except OSError:
        return os.path.basename(path)
    return f"{os.path.basename(path)} ({when.isoformat(timespec='seconds')})"


# --------------------------------------------------------------------------------------
# Decoding the frames again
# --------------------------------------------------------------------------------------


def window_frames(windows: list[dict[str, Any]], most: int = STRIP_FRAMES_MAX) -> list[int]:
    """The frames a segmented video's strip shows: the middle one of the frames the model saw
    in each window (``most`` windows at most, spread evenly)."""
    ok = [w for w in windows if parse_indices(w.get("frame_indices"))]
    if len(ok) > most:
        ok = [ok[round(i * (len(ok) - 1) / (most - 1))] for i in range(most)]
    frames = []
    for w in ok:
        indices = parse_indices(w.get("frame_indices"))
        frames.append(indices[len(indices) // 2])
    return frames


def shown_frames(indices: list[int], most: int = STRIP_FRAMES_MAX) -> list[int]:
    """The frames one strip shows: the distinct indices in order, or ``most`` of them spread
    evenly when there are more."""
    distinct = sorted(set(indices))
    if len(distinct) <= most:
        return distinct
    return [distinct[round(i * (len(distinct) - 1) / (most - 1))] for i in range(most)]


@dataclass(frozen=True)
class StripMaker:
    """One path -> the frames its row says the model saw, small: what a decoding worker does
    for the report. ``wanted`` maps a path to the frame count of its run and the frames to
    show. A plain picklable object, like :class:`~vmae_cli.views.ViewMaker`."""

    wanted: dict[str, tuple[int, tuple[int, ...]]]
    height_px: int = THUMB_HEIGHT_PX

    def thumb(self, rgb: Any) -> Any:
        """One decoded RGB frame -> uint8 ``(3, h, w)``, ``height_px`` high."""
        import cv2
        import torch

        h, w = rgb.shape[:2]
        width = max(1, round(w * self.height_px / h))
        small = cv2.resize(rgb, (width, self.height_px), interpolation=cv2.INTER_AREA)
        return torch.from_numpy(small).permute(2, 0, 1).contiguous()

    def __call__(self, path: str) -> DecodeOutcome:
        from .decoding import decode_video

        frames_then, indices = self.wanted[path]
        stamp = file_stamp(path)
        refused = not_a_video(path)
        if refused is not None:
            return DecodeOutcome(path, failure=refused, stamp=stamp)
        seen: dict[str, int] = {}

        def sampler(frame_count: int) -> list[int]:
            seen["frames"] = frame_count
            return [i for i in indices if i < frame_count] or [0]

        decoded, failure, meta = decode_video(path, sampler, self.thumb)
        if decoded is None:
            return DecodeOutcome(path, failure=failure, meta=meta, stamp=stamp)
        if meta.frames_decoded != frames_then:
            why = (
                f"now decodes to {meta.frames_decoded} frames, {frames_then} when it was "
                "classified: its frames would not be the ones the model saw"
            )
            return DecodeOutcome(path, failure=Failure("changed", why), meta=meta, stamp=stamp)
        import torch

        frames = torch.stack(decoded.frames).unsqueeze(0)
        views = VideoViews(path, meta, list(decoded.frame_indices), frames, stamp=stamp)
        return DecodeOutcome(path, views=views, meta=meta, stamp=stamp)


def not_a_video(path: str) -> Failure | None:
    """Why the report must not decode ``path`` (``None`` when it may): not a file a decoder
    may open (:func:`~vmae_cli.filegate.check_and_read_head`), or not a video by what FFmpeg
    takes it for (:func:`~vmae_cli.decoding.container_failure`, asked even when the first
    bytes look like a video: a row may name any file)."""
    from .decoding import container_failure
    from .filegate import check_and_read_head

    failure, head = check_and_read_head(path)
    if failure is not None:
        return failure
    return container_failure(path, head, trust_signature=False)


def decode_strips(
    rows: list[dict[str, Any]],
    *,
    workers: int | None = None,
    timeout_s: float | None = DEFAULT_TIMEOUT_S,
    stop: threading.Event | None = None,
    on_done: Callable[[], None] | None = None,
) -> dict[str, Strip]:
    """The strips of ``rows`` (sampled rows, with ``frame_indices`` as ints): their frames
    decoded again in worker processes (crash- and timeout-proof), as small JPEGs; a row
    whose file is gone or changed (size or modification time), that records no stamp, whose
    file is no video (:func:`not_a_video`) or that fails to decode, gets a strip with its
    ``problem``. ``on_done()`` is called once per row."""
    done = on_done or (lambda: None)
    from .pipeline import default_workers
    from .views import iter_decoded

    strips: dict[str, Strip] = {}
    wanted: dict[str, tuple[int, tuple[int, ...]]] = {}
    files: dict[str, str] = {}  # the file each path cell names -> the cell
    for row in rows:
        path = row["path"]
        indices = shown_frames(row["frame_indices"])
        strips[path] = Strip(indices)
        changed = _changed(row)
        if changed:
            strips[path].problem = changed
            done()
        elif not indices:
            strips[path].problem = (
                "its row names no frames (a segmented video without its --segments rows, or a "
                "CSV written before vmae recorded frame_indices there)"
            )
            done()
        else:
            frames = int(float(row.get("frames_decoded") or 0))
            files[cell_path(path)] = path
            wanted[cell_path(path)] = (frames, tuple(indices))
    if not wanted:
        return strips
    job = StripMaker(wanted)
    count = default_workers() if workers is None else workers
    for outcome in iter_decoded(
        list(wanted), job, workers=min(count, len(wanted)), timeout_s=timeout_s, stop=stop
    ):
        strip = strips[files[outcome.path]]
        done()
        if outcome.views is None:
            failure = outcome.failure
            strip.problem = f"{failure.status}: {failure.error}" if failure else "not decoded"
            continue
        strip.indices = list(outcome.views.frame_indices)
        strip.jpegs = [_jpeg(frame) for frame in outcome.views.frames[0]]
    return strips


def _changed(row: dict[str, Any]) -> str:
    """Why a row's file is not the one it was classified from (``""`` when it is)."""
    stamp = file_stamp(cell_path(row["path"]))
    if stamp is None:
        return "the file is gone (moved or deleted since the run)"
    size, mtime = (_whole(row.get(key)) for key in STAMP_COLUMNS)
    if size is None or mtime is None:
        # Without the stamp nothing says the file is the one the row was classified from (a
        # hand-made row, or one of a file that could not be read): its frames may be anything.
        return (
            "its row records no size_bytes and mtime_ns, so nothing says this file is the one "
            "it was classified from: not shown"
        )
    if (stamp.size_bytes, stamp.mtime_ns) != (size, mtime):
        return "the file changed since the run (size or modification time differ): not shown"
    return ""


def _whole(value: Any) -> int | None:
    """A stamp cell as an int (JSON and Parquet hold ints, CSV text), ``None`` when empty or
    not a number."""
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _jpeg(frame: Any) -> bytes:
    """A uint8 ``(3, h, w)`` RGB frame as JPEG bytes."""
    import cv2

    bgr = cv2.cvtColor(frame.permute(1, 2, 0).numpy(), cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise ValueError("OpenCV could not encode a JPEG")
    return buf.tobytes()


# --------------------------------------------------------------------------------------
# Window rows
# --------------------------------------------------------------------------------------


def read_windows(
    sources: Iterable[str | os.PathLike[str]], paths: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """The window rows of ``paths`` from ``--segments-out`` files (CSV or JSONL), in window
    order; the others are skipped as they are read, so memory holds the shown videos' only."""
    found: dict[str, list[dict[str, Any]]] = {}
    for source in map(os.fspath, sources):
        for row in _rows_of(source, paths):
            found.setdefault(row["path"], []).append(row)
    for rows in found.values():
        rows.sort(key=lambda r: int(float(r.get("window") or 0)))
    return found


def _rows_of(source: str, paths: set[str]) -> Iterator[dict[str, Any]]:
    """The rows of ``paths`` in one output (video or window rows), one at a time, through
    its format's class (:func:`vmae_cli.formats.read_rows`: the other rows skipped a block at
    a time, never made dicts)."""
    from .formats import read_rows
    from .summary import SummaryError

    try:
        yield from read_rows(source, paths=paths)
    except OSError as exc:
        raise SummaryError(f"{source}: {exc.strerror or exc}", path=source) from None
    except ValueError as exc:  # rows vmae did not write (formats.ForeignRowsError, JSON)
        raise SummaryError(f"{source}: not a vmae output ({exc})", path=source) from None
