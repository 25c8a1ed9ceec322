"""vmae_cli.report and `vmae report`: the offline HTML page of a run."""

from __future__ import annotations

import base64
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows
from typer.testing import CliRunner

from vmae_cli import run
from vmae_cli.cli import EXIT_OK, EXIT_USAGE, app
from vmae_cli.report import (
    ReportOptions,
    build_report,
    parse_indices,
    shown_frames,
    window_frames,
)
from vmae_cli.report_html import label_colours, score_chart, timeline

#: An <img>, <script>, <link> or <a> pointing anywhere but into the page itself.
EXTERNAL = re.compile(r"""(?:src|href)\s*=\s*["'](?!data:|#)""", re.I)


def test_indices_are_read_from_both_formats_and_spread_over_a_strip() -> None:
    assert parse_indices([3, 5]) == parse_indices("3 5") == [3, 5]
    assert parse_indices("") == parse_indices(None) == []
    assert shown_frames([4, 0, 4, 8]) == [0, 4, 8]
    eighty = list(range(80))
    picked = shown_frames(eighty, most=16)
    assert len(picked) == 16 and picked[0] == 0 and picked[-1] == 79
    windows = [{"frame_indices": [i * 10 + j for j in range(4)]} for i in range(40)]
    frames = window_frames(windows, most=16)
    assert len(frames) == 16 and frames[0] == 2 and frames[-1] == 392


def _lab(fill: str) -> tuple[float, float, float]:
    """A CSS colour (``#RRGGBB`` or ``hsl(h,s%,l%)``) in CIELAB (D65)."""
    import colorsys

    if fill.startswith("hsl("):
        h, s, li = (float(v.rstrip("%")) for v in fill[4:-1].split(","))
        rgb = colorsys.hls_to_rgb(h / 360, li / 100, s / 100)
    else:
        rgb = tuple(int(fill[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    xyz = (
        (0.4124 * lin[0] + 0.3576 * lin[1] + 0.1805 * lin[2]) / 0.95047,
        0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2],
        (0.0193 * lin[0] + 0.1192 * lin[1] + 0.9505 * lin[2]) / 1.08883,
    )
    fx, fy, fz = (t ** (1 / 3) if t > 0.008856 else 7.787 * t + 16 / 116 for t in xyz)
    return 116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)


#: Two colours at least this far apart in CIELAB (delta E 1976) are told apart at a glance,
#: side by side in a timeline or across a page (2.3 is the smallest difference one sees).
DISTINCT_DELTA_E = 20


def test_the_most_frequent_labels_have_colours_of_their_own_and_a_legend(
    tmp_path: Path,
) -> None:
    """25 labels: the 20 most frequent have clearly different colours on the chart, the
    others one grey, and the page's legend says which colour is which."""
    import itertools

    rows = tmp_path / "rows.jsonl"
    counts = {f"label {i:02d}": 40 - i for i in range(25)}  # label 00 the most frequent
    with rows.open("w") as f:
        for label, n in counts.items():
            for k in range(n):
                row = {"path": f"/videos/{label}/{k}.mp4", "status": "ok", "label": label}
                f.write(json.dumps({**row, "error": "", "score": 0.5}) + "\n")
    out = tmp_path / "report.html"
    build_report([rows], out, options=ReportOptions(per_label=0))
    page = out.read_text(encoding="utf-8")
    chart = r'fill="([^"]+)"><title>(label \d\d): \d+</title>'  # a bar of the label chart
    fills = {label: fill for fill, label in re.findall(chart, page)}
    assert sorted(fills) == sorted(counts)
    first = [f"label {i:02d}" for i in range(20)]
    for a, b in itertools.combinations(first, 2):
        gap = math.dist(_lab(fills[a]), _lab(fills[b]))
        assert gap >= DISTINCT_DELTA_E, (a, fills[a], b, fills[b], round(gap, 1))
    rest = {fills[f"label {i:02d}"] for i in range(20, 25)}
    assert len(rest) == 1 and rest.isdisjoint(fills[a] for a in first)
    # The legend: each coloured label with its swatch, then the others as one.
    found = re.search(r'<ul class="legend"[^>]*>(.*?)</ul>', page)
    assert found, "no legend"
    items = re.findall(r'background:([^"]+)"></span>(.*?)</li>', found.group(1))
    assert items[:20] == [(fills[a], a) for a in first]
    assert items[20] == (rest.pop(), "<i>5 other labels</i>")


def test_a_timeline_has_the_legend_of_its_labels() -> None:
    colours = label_colours(["walking", "running", "(low confidence)"])
    windows = [
        {"start_s": 0.0, "end_s": 1.0, "label": "running", "status": "ok", "score": 0.9},
        {"start_s": 1.0, "end_s": 2.0, "label": "", "status": "ok", "score": 0.1},
        {"start_s": 2.0, "end_s": 3.0, "label": "swimming", "status": "ok", "score": 0.7},
    ]
    svg = timeline(windows, colours)
    fills = re.findall(r'<rect [^>]*fill="([^"]+)"', svg)
    assert fills[0] == colours["running"] != colours["walking"]
    # No label, and a label the page has no colour of its own for: two greys of their own.
    assert len({fills[1], fills[2], colours["running"], colours["walking"]}) == 4
    legend_items = re.findall(r'background:([^"]+)"></span>(.*?)</li>', svg)
    assert legend_items[0] == (colours["running"], "running")
    assert [name for _, name in legend_items[1:]] == [
        "<i>1 other labels</i>",
        "<i>low confidence or failed</i>",
    ]


def test_the_score_histogram_marks_its_counts_at_their_heights() -> None:
    """The largest count is written level with the top of the tallest bar, 0 at the
    baseline (it was written at the baseline: "11 at zero")."""
    svg = score_chart([0.95] * 11 + [0.42] * 3 + [0.1])
    rect = r'<rect x="([\d.]+)" y="([\d.]+)" width="[\d.]+" height="([\d.]+)"'
    bars = [(float(x), float(y), float(h)) for x, y, h in re.findall(rect, svg)]
    baseline = max(y + h for _, y, h in bars)
    top = min(y for _, y, h in bars if h > 0)
    # The count axis: the numbers left of the first bar (the score ticks are under the bars).
    text = r'<text [^>]*x="([\d.]+)" y="([\d.]+)"[^>]*>(\d+)</text>'
    left = min(x for x, _, _ in bars)
    counts = {int(n): float(y) for x, y, n in re.findall(text, svg) if float(x) < left}
    assert 11 in counts and abs(counts[11] - top) <= 6, (counts, top)  # baseline 4 px below
    assert 0 in counts and abs(counts[0] - baseline) <= 6, (counts, baseline)
    assert "videos" in svg and "top-1 score" in svg


@pytest.fixture(scope="module")
def segmented_run(tmp_path_factory, test_videos, bad_files, tiny_model_dir) -> dict[str, Path]:
    """A segmented run over videos in two folders, with bad files among them."""
    root = tmp_path_factory.mktemp("report")
    videos = root / "videos"
    for folder, names in {"a": ("h264", "vp9", "edit_list"), "b": ("mjpeg", "portrait")}.items():
        (videos / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(test_videos[name], videos / folder / test_videos[name].name)
    for name in ("random_bytes", "text"):
        shutil.copy(bad_files[name], videos / "b" / f"{name}.mp4")
    rows, windows = root / "rows.jsonl", root / "windows.csv"
    run(
        videos,
        rows,
        model=str(tiny_model_dir),
        workers=1,
        top_k=3,
        segments=True,
        segments_output=windows,
    )
    return {"videos": videos, "rows": rows, "windows": windows, "root": root}


def _videos(page: str) -> list[tuple[str, list[int], list[np.ndarray]]]:
    """Each shown video of a page: path, data-frame-indices and its frames (RGB)."""
    import cv2

    found = []
    pattern = r'data-path="([^"]*)" data-frame-indices="([^"]*)"><div class="strip">(.*?)</div>'
    for m in re.finditer(pattern, page):
        images = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', m.group(3))
        frames = [
            cv2.cvtColor(
                cv2.imdecode(np.frombuffer(base64.b64decode(b), np.uint8), cv2.IMREAD_COLOR),
                cv2.COLOR_BGR2RGB,
            )
            for b in images
        ]
        found.append((m.group(1), [int(i) for i in m.group(2).split()], frames))
    return found


def test_the_page_shows_every_label_failure_and_the_frames_the_rows_name(
    segmented_run: dict[str, Path],
) -> None:
    from tools.fidelity import upright_frames
    from tools.videogen import read_index

    out = segmented_run["root"] / "report.html"
    made = build_report(
        [segmented_run["rows"]],
        out,
        segments=[segmented_run["windows"]],
        options=ReportOptions(workers=1),
    )
    page = out.read_text(encoding="utf-8")
    rows = read_rows(segmented_run["rows"])
    ok = [r for r in rows if r["status"] == "ok"]
    assert made.rows == len(rows) and made.strips == len(ok)  # few videos: all shown
    # Self-contained: no URL out of the page.
    assert not EXTERNAL.findall(page)
    assert "http://" not in page and "https://" not in page
    # A section per label, every failure with its error.
    for label in {r["label"] for r in ok}:
        assert f'data-label="{label}"' in page
    for r in rows:
        if r["status"] != "ok":
            assert r["path"] in page and r["error"].split(":")[0] in page
    # Each strip shows the frames its windows name: the code each frame carries is the one
    # an independent full decode finds at that index (edit-list files show an offset code).
    shown = _videos(page)
    assert {p for p, _, _ in shown} == {r["path"] for r in ok}
    windows = read_rows(segmented_run["windows"])
    for path, indices, frames in shown:
        mine = [w for w in windows if w["path"] == path]
        middles = [
            int(w["frame_indices"].split()[len(w["frame_indices"].split()) // 2]) for w in mine
        ]
        assert indices == middles[: len(indices)] or set(indices) <= set(middles)
        _, reference = upright_frames(path, keep=set(indices))
        for i, frame in zip(indices, frames, strict=True):
            assert read_index(frame) == read_index(reference[i]), (path, i)
        # A timeline per shown video, a window each.
    assert page.count('class="timeline"') == len(ok)


def test_a_video_changed_since_the_run_is_shown_as_changed(
    segmented_run: dict[str, Path], tmp_path: Path
) -> None:
    rows = tmp_path / "rows.jsonl"
    lines = segmented_run["rows"].read_text().splitlines()
    changed = None
    kept = []
    for line in lines:
        row = json.loads(line)
        if row["status"] == "ok" and changed is None:
            changed = row["path"]
            row["mtime_ns"] = int(row["mtime_ns"]) - 10**9  # as if the file was replaced
        kept.append(json.dumps(row))
    rows.write_text("\n".join(kept) + "\n")
    out = tmp_path / "report.html"
    build_report([rows], out, options=ReportOptions(workers=0))
    page = out.read_text(encoding="utf-8")
    block = page[page.index(f'data-path="{changed}"') :][:2000]
    assert "changed since the run" in block and "<img" not in block.split("</div>")[0]


def _frames_decoded(path: Path) -> int:
    """The frame count FFmpeg decodes from ``path`` (through PyAV, without vmae's checks of
    what the file is): what a hand-made row could say."""
    from vmae_cli.decoding import decode_pyav

    return decode_pyav(str(path), lambda n: [0], lambda frame: frame).meta.frames_decoded


def _hand_made_row(path: Path, *, stamped: bool = True) -> dict:
    """A row a person could write for ``path``: everything a report needs to decode it
    again (the right frame count and frames), the file's stamp unless ``stamped`` is false."""
    frames = _frames_decoded(path)
    st = path.stat()
    return {
        "path": str(path),
        "status": "ok",
        "error": "",
        "label": "made by hand",
        "score": 0.5,
        "frames_decoded": frames,
        "frame_indices": list(range(min(frames, 4))),
        "size_bytes": st.st_size if stamped else None,
        "mtime_ns": st.st_mtime_ns if stamped else None,
    }


def _problem_of(page: str, path: Path) -> str:
    """What a shown video's block says instead of its frames (empty when it shows frames)."""
    block = page[page.index(f'data-path="{path}"') :].split('<p class="meta">')[0]
    if "<img" in block:
        return ""
    found = re.search(r'<p class="problem">frames not shown: ([^<]*)</p>', block)
    assert found, block
    return found.group(1)


def test_only_videos_unchanged_since_their_row_show_frames(tmp_path: Path, test_videos) -> None:
    """A row may name any file: only a video container and codec FFmpeg finds, whose size and
    modification time are the row's, is decoded again. A text file (FFmpeg renders .nfo text
    as video), an image named .mp4, a video touched after its row was written and a row
    without the stamp get a note instead of frames."""
    folder = tmp_path / "v"
    folder.mkdir()
    video = folder / "clip.mp4"
    shutil.copy(test_videos["h264"], video)
    nfo = folder / "release.nfo"
    nfo.write_text("".join(f"line {i}: the notes of a release\n" for i in range(40)))
    ppm = folder / "still.mp4"  # a binary PPM image (P6), 64 x 48, under a video's name
    pixels = np.random.default_rng(7).integers(0, 256, 64 * 48 * 3, dtype=np.uint8)
    ppm.write_bytes(b"P6\n64 48\n255\n" + pixels.tobytes())
    touched = folder / "touched.mp4"
    shutil.copy(test_videos["vp9"], touched)
    unstamped = folder / "unstamped.mp4"
    shutil.copy(test_videos["mjpeg"], unstamped)
    rows = [
        _hand_made_row(video),
        _hand_made_row(nfo),
        _hand_made_row(ppm),
        _hand_made_row(touched),
        _hand_made_row(unstamped, stamped=False),
        # A file gone before the run: its row has no stamp (null), so the table's mtime_ns
        # column becomes floats; the shown rows' stamps must still compare exactly.
        {"path": str(folder / "gone.mp4"), "status": "not_found", "error": "file not found"},
    ]
    st = touched.stat()
    os.utime(touched, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # edited after the run
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "report.html"
    made = build_report([source], out, options=ReportOptions(workers=0))
    page = out.read_text(encoding="utf-8")
    assert _problem_of(page, video) == "" and made.strips == 1
    assert "not a video container" in _problem_of(page, nfo) and "tty" in _problem_of(page, nfo)
    assert "not a video container" in _problem_of(page, ppm)
    assert "changed since the run" in _problem_of(page, touched)
    assert "records no size_bytes and mtime_ns" in _problem_of(page, unstamped)


def test_the_report_decodes_video_containers_and_codecs_only(tmp_path: Path, test_videos) -> None:
    """What FFmpeg opens but is no video (images it reads as one frame, an MP3's cover) is
    refused from its header; every generated test video passes."""
    from tools.videogen import STILL_IMAGES, write_still_image
    from vmae_cli.report import not_a_video

    for codec in STILL_IMAGES:
        path = write_still_image(tmp_path, codec, seed=3)
        assert _frames_decoded(path) == 1  # FFmpeg takes it for a one-frame video
        refused = not_a_video(str(path))
        assert refused is not None and refused.status == "not_video", (codec, refused)
        assert "not a video container" in refused.error
    for name, path in test_videos.items():
        assert not_a_video(str(path)) is None, name


def test_the_page_stays_under_its_size_limit(tmp_path: Path, test_videos) -> None:
    """2,000 generated rows over 40 labels, hard links to a few videos: the strips of the
    least frequent labels are dropped to stay under the limit, and the page says so."""
    rows = tmp_path / "rows.jsonl"
    sources = [test_videos[k] for k in ("h264", "vp9", "mjpeg", "hevc")]
    (tmp_path / "v").mkdir()
    with rows.open("w") as f:
        for i in range(2000):
            src = tmp_path / "v" / f"{i:04d}{sources[i % len(sources)].suffix}"
            os.link(sources[i % len(sources)], src)  # a video of its own: one row each
            st = src.stat()
            status = "ok" if i % 50 else "damaged"
            f.write(
                json.dumps(
                    {
                        "path": str(src),
                        "status": status,
                        "error": "" if status == "ok" else f"cut short {i}",
                        "label": f"label {i % 40:02d}" if status == "ok" else "",
                        "score": (i % 97) / 100 if status == "ok" else None,
                        "frames_decoded": 24,
                        "frame_indices": [0, 3, 6, 9, 12, 15, 18, 21],
                        "size_bytes": st.st_size,
                        "mtime_ns": st.st_mtime_ns,
                    }
                )
                + "\n"
            )
    limit = 400 * 1024
    out = tmp_path / "report.html"
    made = build_report([rows], out, options=ReportOptions(per_label=2, max_bytes=limit))
    assert out.stat().st_size <= limit and made.bytes <= limit
    assert 0 < made.labels_with_strips < 40 and made.left_out == 40 - made.labels_with_strips
    page = out.read_text(encoding="utf-8")
    assert page.count('class="label"') == 40
    assert "under its size limit" in page
    assert "and 0 more" not in page and page.count("cut short") == 40


def test_the_command_writes_the_page_and_refuses_what_is_not_vmae_output(
    segmented_run: dict[str, Path], tmp_path: Path
) -> None:
    out = tmp_path / "r.html"
    args = ["report", str(segmented_run["rows"]), "--segments", str(segmented_run["windows"])]
    result = CliRunner().invoke(app, [*args, "-o", str(out), "--workers", "1"])
    assert result.exit_code == EXIT_OK, result.output
    assert out.exists() and "wrote" in result.stderr and result.stdout == ""
    other = tmp_path / "notes.csv"
    other.write_text("a,b\n1,2\n")
    bad = CliRunner().invoke(app, ["report", str(other), "-o", str(out)])
    assert bad.exit_code == EXIT_USAGE and "not a vmae output" in bad.stderr


@pytest.mark.slow
def test_parquet_rows_give_the_same_summary_and_page_as_jsonl_rows(
    segmented_run: dict[str, Path], tiny_model_dir: Path, tmp_path: Path
) -> None:
    """Parquet is one more format class: summarize and report read it like the others."""
    rows, windows = tmp_path / "rows.parquet", tmp_path / "windows.parquet"
    run(
        segmented_run["videos"],
        rows,
        model=str(tiny_model_dir),
        workers=1,
        top_k=3,
        segments=True,
        segments_output=windows,
    )
    cli = CliRunner()
    tables = {}
    for source in (segmented_run["rows"], rows):
        result = cli.invoke(app, ["summarize", str(source)], catch_exceptions=False)
        assert result.exit_code == EXIT_OK, result.output
        tables[source.suffix] = result.stdout.split("\n", 1)[1]  # after "N rows in 1 file"
    assert tables[".parquet"] == tables[".jsonl"]
    pages = {}
    for source, segments in ((segmented_run["rows"], segmented_run["windows"]), (rows, windows)):
        out = tmp_path / f"{source.suffix[1:]}.html"
        args = ["report", str(source), "--segments", str(segments), "-o", str(out)]
        result = cli.invoke(app, [*args, "--workers", "1"], catch_exceptions=False)
        assert result.exit_code == EXIT_OK, result.output
        pages[source.suffix] = _videos(out.read_text(encoding="utf-8"))
    strips = {k: [(p, i) for p, i, _ in v] for k, v in pages.items()}
    assert strips[".parquet"] == strips[".jsonl"] and strips[".jsonl"]


def _browser() -> str | None:
    return next(
        (
            shutil.which(b)
            for b in ("chromium", "chromium-browser", "google-chrome")
            if shutil.which(b)
        ),
        None,
    )


@pytest.mark.slow  # starts a real browser, twice
@pytest.mark.skipif(_browser() is None, reason="no headless Chromium (apt-get install chromium)")
def test_headless_chromium_renders_the_summary_and_a_frame_strip(
    segmented_run: dict[str, Path], tmp_path: Path
) -> None:
    """The page opened offline in a real browser: a screenshot that is not blank, and a DOM
    (after the script ran) with the summary table and frame images loaded."""
    from PIL import Image

    page = segmented_run["root"] / "browser.html"
    build_report([segmented_run["rows"]], page, segments=[segmented_run["windows"]])
    shot = tmp_path / "shot.png"
    base = [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    base += ["--disable-background-networking", f"--user-data-dir={tmp_path / 'profile'}"]
    url = page.resolve().as_uri()
    subprocess.run(
        [*base, "--window-size=1280,1800", f"--screenshot={shot}", url],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.exists(), "the browser wrote no screenshot"
    pixels = np.asarray(Image.open(shot).convert("RGB"))
    assert pixels.std() > 20, "a blank page"
    colours = len(np.unique(pixels.reshape(-1, 3), axis=0))
    assert colours > 500, "no pictures rendered"  # text and tables alone have a few dozen
    dom = subprocess.run(
        [*base, "--dump-dom", url], capture_output=True, timeout=120, text=True, check=False
    ).stdout
    assert "By status" in dom and "<table" in dom and 'class="strip"' in dom


@pytest.mark.parametrize("per_label", [1, 4, 7, 40])
def test_videos_are_sampled_as_sorting_each_label_would_sample_them(
    per_label: int, tmp_path: Path, monkeypatch
) -> None:
    """Issue 25: a label of ten million videos is sampled without sorting it (a partition by
    score; the paths of the videos tied at the edge compared by Arrow, a block at a time):
    the videos shown are those sorting the label by score, then path, gives (half the
    highest scores, the rest the lowest), ties, scores missing and repeated paths (two
    models) included."""
    import random

    import pandas as pd

    import vmae_cli.formats as formats
    import vmae_cli.report as report
    from vmae_cli.summary import read_results

    monkeypatch.setattr(formats, "FRAME_ROWS", 50)
    monkeypatch.setattr(report, "PATH_BLOCK_ROWS", 7)
    rnd = random.Random(per_label)
    rows = [
        {
            "path": f"/v/{rnd.randrange(60):03d}.mp4",
            "status": "ok",
            "label": rnd.choice(["x", "y", ""]),
            "score": rnd.choice([0.5, 0.5, 0.25, 0.75, None]),
            "model": rnd.choice(["m1", "m2"]),
        }
        for _ in range(400)
    ]
    source = tmp_path / "rows.parquet"
    pd.DataFrame(rows).to_parquet(source)
    table = read_results([source])
    data = report._summarise(table, [str(source)], ReportOptions(per_label=per_label), None)
    ok = table.assign(label=table["label"].astype(str).replace("", "(low confidence)"))
    ok = ok.assign(at=range(len(ok)))
    for section in data.labels:
        members = ok[ok["label"] == section.label]
        ordered = members.sort_values(["score", "path"], ascending=[False, True], kind="stable")
        top = ordered.head((per_label + 1) // 2)
        bottom = ordered.iloc[len(top) :].tail(per_label - len(top))
        want = [("highest", p) for p in top["at"]] + [("lowest", p) for p in bottom["at"]]
        got = [(s.pick, s.row["path"], s.row["model"], s.row["label"]) for s in section.shown]
        assert got == [(pick, ok["path"][i], ok["model"][i], section.label) for pick, i in want], (
            section.label
        )


def test_the_score_chart_counts_an_array_as_a_list() -> None:
    scores = [0.0, 0.05, 0.051, 0.5, 0.999, 1.0, 0.3, 0.3]
    assert score_chart(np.asarray(scores)) == score_chart(scores)
    assert score_chart(np.asarray([])) == score_chart([]) == ""
