"""URL inputs against real servers the tests start (tests/servers.py): an S3-compatible one
(moto behind a counting, fault-injecting proxy) and an HTTP server that honours Range.

The same videos from the local disk, from S3 and over HTTP give the same rows (less the path,
the stamp and the note of what the fetch cost); a seeking decoder fetches a fraction of a
long video; every failure a store can give is a row, and ``--resume`` redoes exactly those.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import read_rows

from vmae_cli import remote
from vmae_cli.runner import run

OK = "ok"


@pytest.fixture(autouse=True)
def _fresh_objects():
    """Each test's servers are new: nothing of an earlier test's objects is kept."""
    remote.reset()
    yield
    remote.reset()


@pytest.fixture(autouse=True)
def _fast_backoff(monkeypatch):
    monkeypatch.setattr(remote, "FETCH_BACKOFF_S", 0.01)


def _options(model: Path) -> dict:
    return {"model": str(model), "workers": 1, "device": "cpu", "backend": "torch"}


def _comparable(row: dict) -> dict:
    notes = "; ".join(n for n in row["notes"].split("; ") if not n.startswith("fetched "))
    return {k: v for k, v in row.items() if k not in ("path", "mtime_ns", "notes")} | {
        "notes": notes
    }


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["path"].rsplit("/", 1)[-1].split("?")[0]: r for r in rows}


def test_local_s3_and_http_give_the_same_rows(
    s3, http_server, test_videos, bad_files, tiny_model_dir, tmp_path
):
    names = ["h264", "hevc", "vp9", "h264_bframes", "mpegts", "edit_list", "mjpeg", "vfr"]
    files = [test_videos[n] for n in names] + [bad_files["text"], bad_files["truncated_h264"]]
    folder = tmp_path / "local"
    folder.mkdir()
    for f in files:
        (folder / f.name).write_bytes(f.read_bytes())
    s3.upload("videos", files, prefix="batch")
    listed = tmp_path / "urls.txt"
    listed.write_text("".join(http_server.put(f.name, f) + "\n" for f in files))
    options = _options(tiny_model_dir)
    local, from_s3, from_http = (tmp_path / f"{n}.csv" for n in ("local", "s3", "http"))
    run([str(folder)], local, **options)
    report = run(["s3://videos/batch/"], from_s3, **options)
    assert report.found == len(files)
    run([], from_http, files_from=str(listed), **options)
    want = _by_name(read_rows(local))
    for out, scheme in ((from_s3, "s3://videos/batch/"), (from_http, http_server.url)):
        got = _by_name(read_rows(out))
        assert set(got) == set(want), scheme
        for name, row in got.items():
            assert row["path"].startswith(scheme) and row["path"].endswith(name), row["path"]
            assert _comparable(row) == _comparable(want[name]), (scheme, name)
            assert row["size_bytes"] == want[name]["size_bytes"]
    # No credential anywhere in what was written.
    for out in (from_s3, from_http):
        assert s3.credentials["AWS_SECRET_ACCESS_KEY"] not in out.read_text()


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    """60 s of 320x240 H.264 at a high bitrate (2 s GOPs, B-frames): what a seeking decoder
    should read a fraction of."""
    from tools.videogen import write_video

    return write_video(
        tmp_path_factory.mktemp("long") / "long.mp4",
        codec="h264",
        width=320,
        height=240,
        num_frames=1500,
        gop=50,
        bframes=2,
        stream_options={"crf": "8"},
    )


@pytest.mark.slow
def test_a_long_video_is_fetched_in_part_with_the_frames_of_a_local_copy(
    s3, http_server, long_video
):
    import numpy as np

    from vmae_cli.decoding import decode_video

    size = long_video.stat().st_size
    assert size > 2_000_000
    local, _, _ = decode_video(str(long_video), 16, lambda x: x)
    (s3_url,) = s3.upload("videos", [long_video])
    http_url = http_server.put("long.mp4", long_video)
    for url, server in ((s3_url, s3.proxy), (http_url, http_server)):
        got, failure, meta = decode_video(url, 16, lambda x: x)
        assert failure is None and meta.decoder == "pyav-seek" == local.meta.decoder
        assert got.frame_indices == local.frame_indices
        assert all(np.array_equal(a, b) for a, b in zip(got.frames, local.frames, strict=True))
        fetched = remote.take_fetched(url)
        sent = server.traffic(url).bytes_sent
        assert fetched.bytes <= sent <= fetched.bytes + 4096  # what vmae counts is what came
        assert sent <= size / 3, (url, sent, size)


def test_every_failure_is_a_row_and_resume_redoes_exactly_those(
    s3, test_videos, bad_files, tiny_model_dir, tmp_path
):
    good = [test_videos[n] for n in ("h264", "vp9", "hevc")]
    urls = s3.upload("videos", good, prefix="in")
    (denied,) = s3.upload("videos", {"in/denied.mp4": test_videos["h264_bframes"]})
    (cut,) = s3.upload("videos", {"in/cut.mp4": test_videos["edit_list"]})
    (truncated,) = s3.upload("videos", {"in/truncated.mp4": bad_files["truncated_h264"]})
    missing = "s3://videos/in/missing.mp4"
    s3.deny(denied)
    for _ in range(remote.FETCH_TRIES + 2):  # every try of a read is cut off
        s3.proxy.cut(cut, after_bytes=2000)
    s3.proxy.throttle(urls[0], times=2)  # throttling is ridden out
    listed = tmp_path / "list.txt"
    listed.write_text(missing + "\n")
    out = tmp_path / "rows.csv"
    report = run(["s3://videos/in/"], out, files_from=str(listed), **_options(tiny_model_dir))
    rows = _by_name(read_rows(out))
    assert len(read_rows(out)) == 7
    assert {n: rows[n]["status"] for n in rows} == {
        **{u.rsplit("/", 1)[1]: OK for u in urls},
        "denied.mp4": "unreadable",
        "cut.mp4": "unreadable",
        "truncated.mp4": "damaged",
        "missing.mp4": "not_found",
    }
    assert "access denied" in rows["denied.mp4"]["error"]
    assert "could not finish reading bytes" in rows["cut.mp4"]["error"]
    assert report.by_status[OK] == 3
    # The store is mended: the object uploaded, the policy lifted, the whole file put back,
    # the connection no longer cut. --resume redoes those four and nothing else.
    s3.proxy.clear_faults()
    s3.client().delete_bucket_policy(Bucket="videos")
    s3.upload("videos", {"in/missing.mp4": test_videos["h264"]})
    s3.upload("videos", {"in/truncated.mp4": test_videos["h264"]})
    again = run(
        ["s3://videos/in/"], out, files_from=str(listed), resume=True, **_options(tiny_model_dir)
    )
    assert again.unreadable_folders == 0
    assert again.skipped == 3 and again.by_status == {OK: 4}
    after = read_rows(out)
    assert len(after) == 7 and {r["status"] for r in after} == {OK}


def test_a_second_run_in_one_process_lists_and_connects_afresh(
    s3, test_videos, tiny_model_dir, tmp_path
):
    """A library user's second run (a resume) in the same process sees what was added to the
    bucket since the first, on a filesystem of its own (remote.reset)."""
    s3.upload("videos", {"fresh/a.mp4": test_videos["h264"]})
    out = tmp_path / "rows.csv"
    first = run(["s3://videos/fresh/"], out, **_options(tiny_model_dir))
    assert first.by_status == {OK: 1}
    fs_of_the_first_run = remote.filesystem("s3://videos/fresh/")[0]
    s3.upload("videos", {"fresh/b.mp4": test_videos["vp9"]})
    again = run(["s3://videos/fresh/"], out, resume=True, **_options(tiny_model_dir))
    assert (again.skipped, again.by_status) == (1, {OK: 1})
    assert sorted(_by_name(read_rows(out))) == ["a.mp4", "b.mp4"]
    assert remote.filesystem("s3://videos/fresh/")[0] is not fs_of_the_first_run


def test_http_failures_are_rows(http_server, test_videos, tiny_model_dir, tmp_path):
    ok = http_server.put("ok.mp4", test_videos["h264"])
    forbidden = http_server.put("forbidden.mp4", test_videos["h264"])
    throttled = http_server.put("throttled.mp4", test_videos["vp9"])
    gone = http_server.url_of("gone.mp4")
    http_server.fail(forbidden, 403, times=None)
    http_server.throttle(throttled, times=2)
    http_server.cut(ok, after_bytes=3000)  # once: tried again
    listed = tmp_path / "urls.txt"
    listed.write_text(f"{ok}\n{forbidden}\n{throttled}\n{gone}?X-Amz-Signature=s3cret\n")
    out = tmp_path / "rows.csv"
    run([], out, files_from=str(listed), **_options(tiny_model_dir))
    rows = _by_name(read_rows(out))
    assert {n: r["status"] for n, r in rows.items()} == {
        "ok.mp4": OK,
        "forbidden.mp4": "unreadable",
        "throttled.mp4": OK,
        "gone.mp4": "not_found",
    }
    assert "403" in rows["forbidden.mp4"]["error"] or "denied" in rows["forbidden.mp4"]["error"]
    assert "s3cret" not in out.read_text()


def test_the_report_shows_the_frames_of_videos_in_a_bucket(
    s3, test_videos, tiny_model_dir, tmp_path
):
    from vmae_cli.report import ReportOptions, build_report

    s3.upload("videos", [test_videos[n] for n in ("h264", "vp9", "hevc")], prefix="r")
    rows = tmp_path / "rows.csv"
    run(["s3://videos/r/"], rows, **_options(tiny_model_dir))
    page = tmp_path / "report.html"
    made = build_report([rows], page, options=ReportOptions(workers=1))
    assert made.rows == 3 and made.strips == 3  # each video's frames fetched again
    assert "s3://videos/r/h264.mp4" in page.read_text(encoding="utf-8")


def test_a_stalled_server_is_a_timeout_row_and_a_refused_one_unreadable(
    http_server, test_videos, monkeypatch
):
    from vmae_cli.decoding import decode_video

    monkeypatch.setattr(remote, "READ_TIMEOUT_S", 0.3)
    monkeypatch.setattr(remote, "CONNECT_TIMEOUT_S", 0.3)
    stalled = http_server.put("stalled.mp4", test_videos["h264"])
    http_server.delay(stalled, 5, times=None)
    _, failure, _ = decode_video(stalled, 8, lambda x: x)
    assert failure.status == "timeout" and "timed out" in failure.error, failure
    refused = "http://127.0.0.1:9/none.mp4"  # the discard port: nothing listens
    _, failure, _ = decode_video(refused, 8, lambda x: x)
    assert failure.status == "unreadable" and "could not finish" in failure.error, failure
