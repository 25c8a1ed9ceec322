"""vmae_cli.embeddings: the journal, its torn tails, resume, the merge into Parquet."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from vmae_cli import embeddings
from vmae_cli.embeddings import (
    COLUMNS,
    JOURNAL_SUFFIX,
    EmbeddingsFile,
    read_embeddings,
)
from vmae_cli.output import OutputBusyError, OutputMismatchError

DIM = 8


def vec(seed: float) -> np.ndarray:
    """A float32 vector whose values tell where it came from."""
    return (np.arange(DIM, dtype=np.float32) + 1) * np.float32(seed)


def open_file(path: Path, *, resume: bool, **settings: str) -> tuple[EmbeddingsFile, set[str]]:
    settings = {"model": "m", "protocol": "uniform"} | settings
    emb = EmbeddingsFile(path, **settings).lock()
    try:
        return emb, emb.start(resume=resume)
    except BaseException:
        emb.close()  # as the run does when it cannot start
        raise


def rows(path: Path) -> dict[tuple[str, int | None], np.ndarray]:
    """The final file's vectors by (path, window), checking no key is there twice."""
    frame = read_embeddings(path)
    keys = [(p, window(w)) for p, w in zip(frame["path"], frame["window"], strict=True)]
    assert len(set(keys)) == len(keys), keys
    return dict(zip(keys, frame["embedding"], strict=True))


def window(cell: object) -> int | None:
    return None if pd.isna(cell) else int(cell)  # type: ignore[call-overload]


def journal(path: Path) -> Path:
    return Path(str(path) + JOURNAL_SUFFIX)


@pytest.mark.parametrize("dtype", [None, "float16", "float32"])
def test_vectors_round_trip_with_their_keys_and_dtype(tmp_path: Path, dtype: str | None) -> None:
    path = tmp_path / "emb.parquet"
    settings = {"dtype": dtype} if dtype else {}
    emb, done = open_file(path, resume=False, **settings)
    assert done == set()
    emb.write("a.mp4", vec(1.5))
    emb.write("b.mp4", vec(-2.25), [(0, vec(0.1)), (1, vec(0.2))])
    emb.write("c.mp4", vec(3.3).astype(np.float64))
    assert emb.finish() == 5
    assert not journal(path).exists()
    frame = read_embeddings(path)
    assert tuple(frame.columns) == COLUMNS
    assert list(frame["path"]) == ["a.mp4", "b.mp4", "b.mp4", "b.mp4", "c.mp4"]
    assert [window(w) for w in frame["window"]] == [None, 0, 1, None, None]
    assert set(frame["model"]) == {"m"} and set(frame["protocol"]) == {"uniform"}
    assert list(frame["dim"]) == [DIM] * 5
    stored = np.float32 if dtype == "float32" else np.float16
    schema = pq.ParquetFile(path).schema_arrow
    assert schema.field("embedding").type.value_type.to_pandas_dtype() == stored
    assert schema.field("embedding").type.list_size == DIM
    assert str(schema.field("window").type) == "int32"
    expected = [vec(1.5), vec(0.1), vec(0.2), vec(-2.25), vec(3.3)]
    for cell, want in zip(frame["embedding"], expected, strict=True):
        assert cell.dtype == stored and cell.shape == (DIM,)
        # Stored as `stored`: equal to the input rounded to it.
        np.testing.assert_array_equal(cell, want.astype(stored))


def test_bad_settings_and_vectors_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="float64"):
        EmbeddingsFile(tmp_path / "e.parquet", model="m", protocol="p", dtype="float64")
    emb, _ = open_file(tmp_path / "e.parquet", resume=False)
    emb.write("a", vec(1))
    with pytest.raises(ValueError, match="values"):
        emb.write("b", np.ones(DIM + 1))
    with pytest.raises(ValueError, match="1-D"):
        emb.write("b", np.ones((2, DIM)))
    with pytest.raises(ValueError, match="window"):
        emb.write("b", vec(1), [(-1, vec(1))])
    with pytest.raises(TypeError):
        emb.write("b", vec(1), [(1.0, vec(1))])  # type: ignore[list-item]
    assert emb.finish() == 1  # the refused writes wrote nothing
    assert list(rows(tmp_path / "e.parquet")) == [("a", None)]


def three_videos(path: Path) -> tuple[int, int]:
    """Journal a, b and c (c with 2 windows), never finished; returns the size of the journal
    before c's records and after them."""
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.write("b", vec(2))
    before = journal(path).stat().st_size
    emb.write("c", vec(3), [(0, vec(3.1)), (1, vec(3.2))])
    after = journal(path).stat().st_size
    emb.close()  # the process "dies": no finish
    return before, after


def test_a_journal_torn_at_any_byte_of_its_last_write_loses_only_that_write(
    tmp_path: Path,
) -> None:
    path = tmp_path / "emb.parquet"
    before, after = three_videos(path)
    whole = journal(path).read_bytes()
    assert len(whole) == after
    for cut in range(before, after):
        journal(path).write_bytes(whole[:cut])
        emb, done = open_file(path, resume=True)
        assert done == {"a", "b"}, cut
        emb.close()
    # The torn tail is cut off, so what a resumed run appends can be read back.
    journal(path).write_bytes(whole[: after - 1])
    emb, _ = open_file(path, resume=True)
    assert before < journal(path).stat().st_size < after - 1  # c's windows, whole, stay
    emb.keep_only({"a", "b"})
    emb.write("d", vec(4))
    emb.finish()
    assert set(rows(path)) == {("a", None), ("b", None), ("d", None)}


def test_a_damaged_record_loses_it_and_everything_after_it(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    three_videos(path)
    data = bytearray(journal(path).read_bytes())
    # b's record is the third (after the file header and a): its payload is its last bytes.
    first = EmbeddingsFile(path, model="m", protocol="uniform").lock()
    offsets = [entry.offset for entry in first._entries() if not isinstance(entry, dict)]
    ends = [entry.end for entry in first._entries() if not isinstance(entry, dict)]
    first.close()
    assert len(offsets) == 5  # a, b, c's two windows, c
    data[ends[1] - 3] ^= 0x40
    journal(path).write_bytes(bytes(data))
    emb, done = open_file(path, resume=True)
    assert done == {"a"}
    assert journal(path).stat().st_size == offsets[1]  # cut where the damage starts
    emb.keep_only(done)
    emb.finish()
    assert set(rows(path)) == {("a", None)}


def test_a_segmented_video_torn_inside_a_window_is_not_done(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    start = journal(path).stat().st_size
    emb.write("seg", vec(5), [(0, vec(5.0)), (1, vec(5.1)), (2, vec(5.2))])
    emb.close()
    whole = journal(path).read_bytes()
    record = (len(whole) - start) // 4  # four records of one size (same key lengths)
    journal(path).write_bytes(whole[: start + record + record // 2])  # inside window 1
    emb, done = open_file(path, resume=True)
    assert done == {"a"}
    # Even kept by mistake, its orphaned window 0 does not reach the final file.
    emb.keep_only({"a", "seg"})
    emb.finish()
    assert set(rows(path)) == {("a", None)}


def test_a_resumed_run_keeps_only_what_it_is_told(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1), [(0, vec(1.1))])
    emb.write("b", vec(2), [(0, vec(2.1))])
    emb.close()  # dies
    emb, done = open_file(path, resume=True)
    assert done == {"a", "b"}
    emb.keep_only({"a"})  # b is redone later, or gone
    emb.write("c", vec(3))
    assert emb.finish() == 3
    got = rows(path)
    assert list(got) == [("a", 0), ("a", None), ("c", None)]
    np.testing.assert_array_equal(got[("a", None)], vec(1).astype(np.float16))
    assert not journal(path).exists()
    assert sorted(os.listdir(tmp_path)) == ["emb.parquet"]  # no temp file either


def test_a_kill_after_a_finished_run_is_completed_by_the_next(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.write("b", vec(2))
    emb.finish()
    # Run 2 resumes, redoes b and does c, then dies.
    emb, done = open_file(path, resume=True)
    assert done == {"a", "b"}
    emb.keep_only({"a", "b"})
    emb.write("b", vec(20))
    emb.write("c", vec(3))
    emb.close()
    # Run 3.
    emb, done = open_file(path, resume=True)
    assert done == {"a", "b", "c"}
    emb.keep_only({"a", "b", "c"})
    assert emb.finish() == 3
    got = rows(path)
    assert list(got) == [("a", None), ("b", None), ("c", None)]
    np.testing.assert_array_equal(got[("b", None)], vec(20).astype(np.float16))


def test_a_kill_during_finish_leaves_files_the_next_run_reads(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.finish()
    emb, _ = open_file(path, resume=True)
    emb.keep_only({"a"})
    emb.write("b", vec(2))
    saved = journal(path).read_bytes()
    emb.finish()
    # Killed after the rename, before the journal was removed: the journal is merged again.
    journal(path).write_bytes(saved)
    emb, done = open_file(path, resume=True)
    assert done == {"a", "b"}
    emb.keep_only(done)
    assert emb.finish() == 2
    assert list(rows(path)) == [("a", None), ("b", None)]


def test_a_redone_video_replaces_all_its_old_windows(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1), [(0, vec(1.0)), (1, vec(1.1)), (2, vec(1.2))])
    emb.finish()
    emb, _ = open_file(path, resume=True)
    emb.keep_only({"a"})
    emb.write("a", vec(9), [(0, vec(9.0))])  # shorter now
    emb.write("a", vec(8), [(0, vec(8.0)), (1, vec(8.1))])  # and redone again
    emb.finish()
    got = rows(path)
    assert list(got) == [("a", 0), ("a", 1), ("a", None)]
    np.testing.assert_array_equal(got[("a", 1)], vec(8.1).astype(np.float16))


def test_resume_refuses_another_model_protocol_or_dtype(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.finish()
    for settings, word in [
        ({"model": "other"}, "model"),
        ({"protocol": "videomae"}, "protocol"),
        ({"dtype": "float32"}, "embeddings_dtype"),
    ]:
        with pytest.raises(OutputMismatchError, match=word) as caught:
            open_file(path, resume=True, **settings)
        assert "\n" not in str(caught.value)
        assert str(caught.value).startswith(str(path))
    with pytest.raises(OutputMismatchError, match="holds float16 vectors, this run writes float32"):
        open_file(path, resume=True, dtype="float32")
    # The same for vectors still in a journal.
    path.unlink()
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.close()
    for settings in [{"model": "other"}, {"protocol": "videomae"}, {"dtype": "float32"}]:
        with pytest.raises(OutputMismatchError, match=JOURNAL_SUFFIX):
            open_file(path, resume=True, **settings)
    emb, done = open_file(path, resume=True)  # what was refused was left as it was
    assert done == {"a"}
    emb.close()


def test_a_file_that_is_not_ours_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    path.write_text("path,label\na.mp4,cat\n")
    with pytest.raises(OutputMismatchError, match="not a vmae embeddings file"):
        open_file(path, resume=True)
    pd.DataFrame({"path": ["a"], "score": [0.5]}).to_parquet(path)
    with pytest.raises(OutputMismatchError, match="not a vmae embeddings file"):
        open_file(path, resume=True)
    assert path.exists()  # refused, not removed


def test_a_second_run_on_the_same_file_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    first, _ = open_file(path, resume=False)
    with pytest.raises(OutputBusyError, match=str(path)):
        EmbeddingsFile(path, model="m", protocol="uniform").lock()
    first.write("a", vec(1))
    first.finish()
    first.close()  # idempotent
    second, done = open_file(path, resume=True)  # free again once the first is done
    assert done == {"a"}
    second.close()
    second.close()


def test_a_fresh_start_removes_the_old_file_and_an_empty_run_writes_a_valid_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.finish()
    emb, done = open_file(path, resume=False)
    assert done == set() and not path.exists()
    emb.keep_only({"a"})  # a no-op after a fresh start
    assert emb.finish() == 0
    frame = read_embeddings(path)
    assert len(frame) == 0 and tuple(frame.columns) == COLUMNS
    assert pq.ParquetFile(path).schema_arrow.field("embedding").type.list_size == 0
    # It can be resumed, even with another dtype (it holds no vector to mix with).
    emb, done = open_file(path, resume=True, dtype="float32")
    assert done == set()
    emb.keep_only(set())
    emb.write("b", vec(2))
    assert emb.finish() == 1
    assert rows(path)[("b", None)].dtype == np.float32


def test_keep_only_leaves_an_untouched_file_in_place(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.finish()
    inode = path.stat().st_ino
    emb, _ = open_file(path, resume=True)
    emb.keep_only({"a", "x"})
    assert path.stat().st_ino == inode  # nothing to drop or add: not rewritten
    assert emb.finish() == 1
    assert path.stat().st_ino == inode


def test_many_vectors_go_in_several_row_groups(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embeddings, "ROW_GROUP_ROWS", 3)
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    for i in range(10):
        emb.write(f"v{i}", vec(i), [(0, vec(i + 0.5))] if i % 2 else [])
    assert emb.finish() == 15
    parquet = pq.ParquetFile(path)
    assert parquet.num_row_groups == 5
    assert all(parquet.metadata.row_group(g).num_rows == 3 for g in range(5))
    # A resume drops some of them (from several row groups) and adds more.
    emb, done = open_file(path, resume=True)
    assert done == {f"v{i}" for i in range(10)}
    emb.keep_only({f"v{i}" for i in range(10) if i not in (1, 6)})
    emb.write("v1", vec(100))
    emb.write("w", vec(7), [(0, vec(7.5)), (1, vec(7.6))])
    assert emb.finish() == 16
    assert pq.ParquetFile(path).num_row_groups == 6
    got = rows(path)
    assert list(got)[-4:] == [("v1", None), ("w", 0), ("w", 1), ("w", None)]
    assert ("v6", None) not in got and ("v1", 0) not in got
    for i in (0, 3, 9):
        np.testing.assert_array_equal(got[(f"v{i}", None)], vec(i).astype(np.float16))
    np.testing.assert_array_equal(got[("v1", None)], vec(100).astype(np.float16))


def test_odd_paths_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    odd = 'line\nbreak "quoted" été/视频 🎬.mp4'
    emb, _ = open_file(path, resume=False)
    emb.write(odd, vec(1), [(0, vec(2))])
    emb.close()
    emb, done = open_file(path, resume=True)
    assert done == {odd}
    emb.keep_only(done)
    emb.finish()
    assert list(rows(path)) == [(odd, 0), (odd, None)]


def test_paths_are_every_video_with_a_vector_in_the_file_or_the_journal(tmp_path: Path) -> None:
    """What a resumed run's embeddings sink filters by the video rows' index (issue 25): the
    file's paths and the journal's, windows' included; none after a fresh start."""
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)
    emb.write("a", vec(1))
    emb.finish()
    emb, _ = open_file(path, resume=True)
    emb.keep_only({"a"})
    emb.write("b", vec(2), [(0, vec(2.1))])
    emb.close()
    emb, done = open_file(path, resume=True)
    assert emb.paths() == {"a", "b"} and done == {"a", "b"}
    emb.close()
    journal(path).write_bytes(journal(path).read_bytes()[:-3])  # b's video vector torn
    emb, done = open_file(path, resume=True)
    assert emb.paths() == {"a", "b"} and done == {"a"}  # b's window vector stays a path
    emb.close()
    emb, _ = open_file(path, resume=False)
    assert emb.paths() == set()
    emb.close()


def test_the_model_revision_is_recorded_in_the_journal_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False, model_revision="sha256:00000000000000aa")
    header = next(e for e in emb._entries() if isinstance(e, dict))
    assert header["model_revision"] == "sha256:00000000000000aa"
    emb.write("a", vec(1))
    emb.finish()
    metadata = pq.ParquetFile(path).schema_arrow.metadata
    assert metadata[embeddings.REVISION_KEY.encode()] == b"sha256:00000000000000aa"
    info = embeddings.describe(path)
    assert (info.model, info.protocol, info.dtype) == ("m", "uniform", "float16")
    assert (info.dim, info.rows, info.model_revision, info.journal) == (
        DIM,
        1,
        "sha256:00000000000000aa",
        False,
    )
    vectors = embeddings.read_video_vectors(path, ["a", "zzz"])
    assert list(vectors) == ["a"] and vectors["a"].dtype == np.float32


def test_an_older_file_without_a_revision_resumes_and_gains_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False)  # as vmae wrote it before: no revision
    emb.write("a", vec(1))
    emb.finish()
    assert embeddings.describe(path).model_revision == ""
    assert embeddings.REVISION_KEY.encode() not in (
        pq.ParquetFile(path).schema_arrow.metadata or {}
    )
    emb, done = open_file(path, resume=True, model_revision="sha256:00000000000000bb")
    assert done == {"a"}
    emb.keep_only(done)
    emb.write("b", vec(2))
    emb.finish()
    assert embeddings.describe(path).model_revision == "sha256:00000000000000bb"
    assert set(rows(path)) == {("a", None), ("b", None)}
    # A journal of an older vmae (its header without the key) resumes too.
    meta = EmbeddingsFile._meta
    with monkeypatch.context() as patch:
        patch.setattr(EmbeddingsFile, "_meta", lambda self: meta(self) | {"model_revision": None})
        emb, _ = open_file(path, resume=True)
        emb._reset_journal()
        header = next(e for e in emb._entries() if isinstance(e, dict))
        assert header["model_revision"] is None
        emb.write("c", vec(3))
        emb.close()
    emb, done = open_file(path, resume=True, model_revision="sha256:00000000000000bb")
    assert done == {"a", "b", "c"}
    emb.close()


@pytest.mark.parametrize("finished", [True, False])
def test_resuming_with_another_revision_is_refused(tmp_path: Path, finished: bool) -> None:
    path = tmp_path / "emb.parquet"
    emb, _ = open_file(path, resume=False, model_revision="sha256:00000000000000aa")
    emb.write("a", vec(1))
    if finished:
        emb.finish()
    else:
        emb.close()  # killed: the journal holds it
    with pytest.raises(OutputMismatchError, match="revision") as caught:
        open_file(path, resume=True, model_revision="sha256:00000000000000cc")
    assert caught.value.options == ("resume",)
    # A run that knows no revision of its own passes.
    emb, done = open_file(path, resume=True)
    assert done == {"a"}
    emb.close()
