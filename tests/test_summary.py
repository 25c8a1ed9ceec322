"""vmae_cli.summary and `vmae summarize`: counts of what vmae's rows say."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vmae_cli import run
from vmae_cli.cli import EXIT_OK, EXIT_USAGE, app
from vmae_cli.scoring import LabelMap
from vmae_cli.summary import (
    Grouping,
    SummaryError,
    by_folder,
    by_group,
    by_label,
    by_status,
    failed,
    read_results,
    with_groups,
)


@pytest.fixture(scope="module")
def outputs(tmp_path_factory, test_videos, bad_files, tiny_model_dir) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("summary")
    videos = root / "videos"
    for folder, names in {"cam1": ("h264", "vp9"), "cam2/deep": ("mjpeg",)}.items():
        (videos / folder).mkdir(parents=True)
        for name in names:
            shutil.copy(test_videos[name], videos / folder / test_videos[name].name)
    shutil.copy(bad_files["text"], videos / "cam2" / "broken.mp4")
    shutil.copy(test_videos["hevc"], videos / "top.mp4")
    out_csv, out_jsonl = root / "out.csv", root / "out.jsonl"
    run(videos, out_csv, model=str(tiny_model_dir), workers=1)
    run(videos, out_jsonl, model=str(tiny_model_dir), workers=1)
    return out_csv, out_jsonl


def _independent(path: Path) -> list[dict]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_counts_equal_those_of_the_csv_read_independently(outputs) -> None:
    out_csv, out_jsonl = outputs
    rows = _independent(out_csv)
    for source in (out_csv, out_jsonl):
        table = read_results([source])
        statuses = dict(zip(*by_status(table)[["status", "videos"]].T.values, strict=True))
        assert statuses == Counter(r["status"] for r in rows)
        labels = by_label(table)
        want = Counter(r["label"] for r in rows if r["status"] == "ok")
        assert dict(zip(labels["label"], labels["videos"], strict=True)) == want
        assert list(failed(table)["status"]) == ["not_video"]
    # The same run in two formats: each video once (issue 24, 6), and said so.
    told: list[str] = []
    both = read_results([out_csv, out_jsonl], on_notice=told.append)
    assert len(both) == len(rows)
    assert told == [
        f"{len(rows)} rows repeat a video a later row has again (same model): the last one "
        "is counted"
    ]


def test_by_folder_groups_below_the_folder_all_videos_share(outputs) -> None:
    table = read_results([outputs[0]])
    one = by_folder(table, 1).set_index("folder")
    assert one["videos"].to_dict() == {".": 1, "cam1": 2, "cam2": 2}
    assert one.loc["cam2", "failed"] == 1
    two = by_folder(table, 2)
    assert set(two["folder"]) == {".", "cam1", "cam2", "cam2/deep"}


def test_formula_escapes_and_escaped_paths_read_back(tmp_path: Path) -> None:
    out = tmp_path / "hand.csv"
    out.write_text(
        "\ufeffpath,status,error,label,score\r\n"
        "a/\\xff.mp4,ok,,'=SUM(1),0.5\r\n"
        "a/b.mp4,ok,,'=SUM(1),0.7\r\n",
        encoding="utf-8",
    )
    told: list[str] = []
    table = read_results([out], on_notice=told.append)
    assert list(by_label(table)["label"]) == ["=SUM(1)"]
    # An older vmae's relative cells: resolved against the current folder, said once.
    assert table["path"][0] == os.path.abspath("a/\\xff.mp4")
    assert len(told) == 1 and "older vmae" in told[0]


def test_what_is_not_vmae_output_is_named_in_one_line(tmp_path: Path) -> None:
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(SummaryError, match="other.csv: not a vmae output"):
        read_results([other])
    with pytest.raises(SummaryError, match="not a vmae output"):
        read_results([tmp_path / "notes.txt"])
    with pytest.raises(SummaryError, match="folder depth"):
        Grouping.parse("folder:0")


def test_the_command_prints_tables_or_one_table_for_machines(outputs) -> None:
    out_csv, _ = outputs
    cli = CliRunner()
    text = cli.invoke(app, ["summarize", str(out_csv)])
    assert text.exit_code == EXIT_OK, text.output
    for title in ("## by status", "## by label (ok videos)", "## by folder (depth 1)"):
        assert title in text.stdout
    lines = cli.invoke(app, ["summarize", str(out_csv), "--by", "folder:1", "-f", "jsonl"])
    folders = [json.loads(line)["folder"] for line in lines.stdout.splitlines()]
    assert folders == [".", "cam1", "cam2"]
    table = cli.invoke(app, ["summarize", str(out_csv), "--by", "status", "-f", "csv"])
    assert next(csv.reader(io.StringIO(table.stdout))) == ["status", "videos", "share"]
    bad = cli.invoke(app, ["summarize", str(out_csv), "--by", "colour"])
    assert bad.exit_code == EXIT_USAGE and "--by colour: use one of" in bad.output


def test_by_group_reads_the_rows_groups_or_maps_their_labels(
    outputs, tmp_path: Path, tiny_model_dir: Path
) -> None:
    out_csv, _ = outputs
    table = read_results([out_csv])
    with pytest.raises(SummaryError, match="no group column"):
        by_group(table)
    labels = list(table[table["status"] == "ok"]["label"])  # formula escapes undone
    top = labels[0]
    mapped = with_groups(table, LabelMap({top: "mine"}))
    groups = by_group(mapped).set_index("group")["videos"].to_dict()
    want = Counter("mine" if label == top else "other" for label in labels)
    assert groups == want
    # Rows classified with --label-map carry their group (the group of the highest summed
    # probability) and group_score; summarize shows them by default.
    label_map = tmp_path / "groups.csv"
    with label_map.open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([("label", "group"), (top, "mine")])
    grouped = tmp_path / "grouped.jsonl"
    run(
        out_csv.parent / "videos",
        grouped,
        model=str(tiny_model_dir),
        workers=1,
        label_map=str(label_map),
    )
    written = Counter(json.loads(line)["group"] for line in grouped.read_text().splitlines())
    table = by_group(read_results([grouped]))
    assert dict(zip(table["group"], table["videos"], strict=True)) == {
        g: n for g, n in written.items() if g
    }
    assert "group_score_median" in table
    text = CliRunner().invoke(app, ["summarize", str(grouped)])
    assert "## by label group (ok videos)" in text.stdout
    again = CliRunner().invoke(
        app,
        ["summarize", str(out_csv), "--by", "group", "--label-map", str(label_map), "-f", "csv"],
    )
    assert again.exit_code == EXIT_OK, again.output
    assert {r["group"]: int(r["videos"]) for r in csv.DictReader(io.StringIO(again.stdout))} == want


def test_labels_emptied_by_min_score_count_as_low_confidence(tmp_path: Path) -> None:
    out = tmp_path / "rows.jsonl"
    lines = [
        {"path": "a.mp4", "status": "ok", "label": "", "score": 0.2, "low_confidence": True},
        {"path": "b.mp4", "status": "ok", "label": "x", "score": 0.9, "low_confidence": False},
        {"path": "c.mp4", "status": "damaged", "label": "", "score": None, "error": "cut"},
    ]
    out.write_text("".join(json.dumps(line) + "\n" for line in lines))
    table = by_label(read_results([out]))
    assert dict(zip(table["label"], table["videos"], strict=True)) == {
        "(low confidence)": 1,
        "x": 1,
    }


@pytest.mark.parametrize(
    ("name", "text", "said"),
    [
        ("list.jsonl", '{"path": ["a"], "status": "ok", "score": 0.5}\n', "path ['a'] is not text"),
        ("inf.jsonl", '{"path": "/v/a.mp4", "status": "ok", "score": Infinity}\n', "score inf"),
        (
            "nan.csv",
            "path,status,score,frames_decoded\n/v/a.mp4,ok,0.5,nan\n",
            "frames_decoded 'nan'",
        ),
        ("word.csv", "path,status,score\n/v/a.mp4,ok,high\n", "score 'high' is not a finite"),
    ],
)
def test_foreign_rows_are_refused_in_one_line(
    name: str, text: str, said: str, tmp_path: Path
) -> None:
    """Issue 24, 16: rows vmae cannot have written are a usage error in one line, for
    summarize and report alike."""
    source = tmp_path / name
    source.write_text(text)
    for args in (
        ["summarize", str(source)],
        ["report", str(source), "-o", str(tmp_path / "r.html")],
    ):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == EXIT_USAGE, result.output
        assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_rows_of_two_models_or_repeated_videos_are_said_and_counted_once(tmp_path: Path) -> None:
    """Issue 24, 6: two runs of the same videos with two models are two videos per file, said
    so; a video repeated with the same model counts once (its last row)."""
    head = "path,status,label,score,model\n"
    a, b, again = tmp_path / "a.csv", tmp_path / "b.csv", tmp_path / "again.csv"
    a.write_text(head + "/v/1.mp4,ok,x,0.5,m1\n/v/2.mp4,ok,x,0.5,m1\n")
    b.write_text(head + "/v/1.mp4,ok,y,0.5,m2\n/v/2.mp4,ok,y,0.5,m2\n")
    again.write_text(head + "/v/1.mp4,ok,z,0.9,m1\n")
    told: list[str] = []
    rows = read_results([a, b], on_notice=told.append)
    assert len(rows) == 4 and told == [
        "the rows hold 2 models (m1, m2): each video is counted once per model"
    ]
    told.clear()
    rows = read_results([a, again], on_notice=told.append)
    assert sorted(zip(rows["path"], rows["label"], strict=True)) == [
        ("/v/1.mp4", "z"),
        ("/v/2.mp4", "x"),
    ]
    assert told == [
        "1 rows repeat a video a later row has again (same model): the last one is counted"
    ]
    result = CliRunner().invoke(app, ["summarize", str(a), str(again)])
    assert result.exit_code == EXIT_OK and "2 rows in 2 files" in result.stdout
    assert "repeat a video" in result.stderr


def test_machine_tables_round_scores_as_the_rows_do(tmp_path: Path) -> None:
    """Issue 24, 21: no 0.6971765000000001 in summarize --format csv/jsonl."""
    rows = tmp_path / "rows.jsonl"
    scores = [0.6971765, 0.1, 0.2]
    rows.write_text(
        "".join(
            json.dumps({"path": f"/v/{i}.mp4", "status": "ok", "label": "x", "score": s}) + "\n"
            for i, s in enumerate(scores)
        )
    )
    for fmt in ("csv", "jsonl"):
        result = CliRunner().invoke(app, ["summarize", str(rows), "--by", "label", "-f", fmt])
        assert result.exit_code == EXIT_OK, result.output
        numbers = re.findall(r"\d+\.\d+", result.stdout)
        assert numbers and all(len(n.split(".")[1]) <= 6 for n in numbers), result.stdout


def test_repeats_and_folders_are_found_as_the_plain_pandas_way_finds_them() -> None:
    """Issue 25: summarize finds repeated videos from digests and folders once per folder
    (ten million rows fit in memory); the answers are the plain pandas ones."""
    import os

    import pandas as pd

    from vmae_cli.summary import _folders, _repeated

    paths = ["/d/a/1.mp4", "/d/b/2.mp4", "/d/a/1.mp4", "/d/3.mp4", "/d/a/x/4.mp4", "/d/b/2.mp4"]
    models = ["m1", "m1", "m1", "m1", "m2", "m2"]
    table = pd.DataFrame({"path": paths, "model": models})
    assert _repeated(table).tolist() == table.duplicated(["path", "model"], keep="last").tolist()
    assert _repeated(table[["path"]]).tolist() == table.duplicated(["path"], keep="last").tolist()
    for depth in (1, 2):
        want = []
        for p in paths:
            rel = os.path.relpath(os.path.dirname(p), "/d")
            want.append(os.sep.join(rel.split(os.sep)[:depth]) if rel != "." else ".")
        assert list(_folders(table["path"], depth)) == want
    assert list(_folders(pd.Series(["a.mp4", "/x/b.mp4"]), 1)) == [".", "x"]  # as before


def _plain_counts(rows) -> dict:
    """The tables as plain pandas counts them, from a table read whole (the way summarize
    counted before it read a block at a time)."""
    ok = rows[rows["status"] == "ok"]
    ok = ok.assign(label=ok["label"].where(ok["label"] != "", "(low confidence)"))
    heads = rows["path"].str.replace(r"/[^/]*$", "", regex=True)
    folder = heads.map(lambda h: os.path.relpath(h, "/c").split(os.sep)[0] if h != "/c" else ".")
    return {
        "status": rows["status"].value_counts().to_dict(),
        "label": ok.groupby("label")["score"].agg(["size", "min", "median", "max"]),
        "folder top": ok.groupby(folder[ok.index])["label"].agg(
            lambda s: s.value_counts().index[0]
        ),
        "failed": rows[rows["status"] != "ok"]
        .sort_values(["status", "path"])[["path", "status", "error"]]
        .values.tolist(),
    }


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("categories", [None, 3])
def test_counts_read_a_block_at_a_time_equal_those_of_the_whole_table(
    fmt: str, categories: int | None, tmp_path: Path, monkeypatch
) -> None:
    """Issue 25: summarize reads ten million rows a block at a time into a compact table
    (categories for text of few values, Arrow strings for the paths and for text of many,
    repeats left out as it is built): its tables are those of the whole table counted the
    plain pandas way, ties and sort orders included."""
    import random

    import pandas as pd

    import vmae_cli.formats as formats
    import vmae_cli.summary as summary

    monkeypatch.setattr(formats, "FRAME_ROWS", 64)
    monkeypatch.setattr(summary, "FOLDER_BLOCK_ROWS", 100)
    monkeypatch.setattr(summary, "DIGEST_BLOCK_ROWS", 30)
    if categories:
        monkeypatch.setattr(summary, "CATEGORIES_MAX", categories)
    rnd = random.Random(7)
    rows = []
    for i in range(900):
        ok = rnd.random() < 0.85
        rows.append(
            {
                "path": f"/c/{rnd.choice('abcde')}/{rnd.randrange(800)}.mp4",  # some repeat
                "status": "ok" if ok else rnd.choice(["damaged", "not_video", "timeout"]),
                "error": "" if ok else rnd.choice(["cut", "=odd", f"only {i}"]),
                "label": rnd.choice(["b", "a", "=c", "Z", "é", ""]) if ok else "",
                "score": round(rnd.random(), 1) if ok else None,
                "model": rnd.choice(["m1", "m2"]),
            }
        )
    source = tmp_path / f"rows.{fmt}"
    whole = pd.DataFrame(rows)
    if fmt == "csv":
        csv_rows = whole.astype(object).where(whole.notna(), "")
        for column in ("error", "label"):
            csv_rows[column] = csv_rows[column].map(lambda v: "'" + v if v[:1] == "=" else v)
        csv_rows.to_csv(source, index=False)
    else:
        whole.to_parquet(source)
    told: list[str] = []
    table = read_results([source], on_notice=told.append)
    plain = whole[~whole.duplicated(["path", "model"], keep="last")].reset_index(drop=True)
    plain = plain.assign(score=plain["score"].astype(float))
    assert len(table) == len(plain) and told[-1].startswith(f"{len(whole) - len(plain)} rows")
    assert table["path"].tolist() == plain["path"].tolist()
    want = _plain_counts(plain)
    statuses = by_status(table)
    assert dict(zip(statuses["status"], statuses["videos"], strict=True)) == want["status"]
    assert list(statuses["status"]) == list(plain["status"].value_counts().index)  # ties too
    labels = by_label(table).set_index("label")
    assert labels["videos"].to_dict() == want["label"]["size"].to_dict()
    assert labels["score_median"].to_dict() == want["label"]["median"].to_dict()
    folders = by_folder(table, 1).set_index("folder")["top_label"]
    assert folders.to_dict() == want["folder top"].to_dict()
    assert failed(table).values.tolist() == want["failed"]
    assert by_label(table).equals(by_label(plain))
    assert by_folder(table, 2).astype(object).equals(by_folder(plain, 2).astype(object))
    mapped = LabelMap({"a": "g1", "b": "g1", "=c": "g2"})
    assert by_group(with_groups(table, mapped)).equals(by_group(with_groups(plain, mapped)))
