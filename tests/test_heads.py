"""vmae_cli.heads and vmae_cli.fitting: a head fitted on a few examples' vectors (`vmae
fit-head`), its folder read back with its checks, and `classify --head` with it."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import read_rows
from typer.testing import CliRunner

from vmae_cli.cli import EXIT_OK, EXIT_USAGE, app
from vmae_cli.embeddings import REVISION_KEY, EmbeddingsFile, describe
from vmae_cli.fitting import (
    DEFAULT_L2,
    FitError,
    cross_validate,
    fit_head,
    fit_linear,
    read_examples,
    stratified_folds,
)
from vmae_cli.heads import (
    BIAS_KEY,
    CONFIG_FILE,
    HEAD_FILES,
    WEIGHT_KEY,
    WEIGHTS_FILE,
    Head,
    HeadError,
    HeadMismatchError,
    read_head,
    write_head,
)

runner = CliRunner()

DIM = 16
REVISION = "sha256:0123456789abcdef"


def blobs(per_class: int, classes: int = 3, dim: int = DIM, seed: int = 0):
    """Vectors of ``classes`` overlapping Gaussian blobs (not separable: the penalty and the
    optimum matter), labels 0..classes-1 in blocks."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 1.2
    y = np.repeat(np.arange(classes), per_class)
    # Values of very different scales: what standardising is for.
    scale = np.geomspace(0.01, 100, dim)
    x = (centres[y] + rng.normal(size=(len(y), dim))) * scale + 5 * scale
    return x, y


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


# -- the fit ------------------------------------------------------------------------------


def test_the_fit_is_scikit_learns_logistic_regression() -> None:
    """The same convex problem as LogisticRegression(C=1/(l2 n)) on standardised vectors:
    the same predictions, and probabilities within what the solvers' tolerances leave."""
    sklearn = pytest.importorskip("sklearn.linear_model")
    x, y = blobs(20)
    weight, bias = fit_linear(x, y, 3)
    mean, std = x.mean(axis=0), x.std(axis=0)
    reference = sklearn.LogisticRegression(C=1 / (DEFAULT_L2 * len(y)), tol=1e-10, max_iter=10_000)
    reference.fit((x - mean) / std, y)
    test, _ = blobs(100, seed=1)
    ours = softmax(test @ weight.T + bias)
    theirs = reference.predict_proba((test - mean) / std)
    assert (ours.argmax(axis=1) == theirs.argmax(axis=1)).all()
    assert np.abs(ours - theirs).max() < 1e-3


def test_the_fit_is_deterministic_and_applies_to_raw_vectors() -> None:
    x, y = blobs(12)
    first = fit_linear(x, y, 3)
    again = fit_linear(x.copy(), y.copy(), 3)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    # Trained on standardised vectors, applied to raw ones: better than chance on its own data.
    assert ((x @ first[0].T + first[1]).argmax(axis=1) == y).mean() > 0.8


def test_a_constant_value_does_not_break_the_fit() -> None:
    x, y = blobs(6)
    x[:, 3] = 7.0  # no spread: nothing to standardise by
    weight, bias = fit_linear(x, y, 3)
    assert np.isfinite(weight).all() and np.isfinite(bias).all()


def test_folds_are_stratified_and_fixed() -> None:
    y = np.array([0] * 7 + [1] * 3 + [2] * 5)
    folds = stratified_folds(y, 3)
    assert (folds == stratified_folds(y, 3)).all()
    for k in range(3):
        assert set(y[folds == k]) == {0, 1, 2}  # every fold holds every label
    for label, count in ((0, 7), (1, 3), (2, 5)):
        sizes = np.bincount(folds[y == label], minlength=3)
        assert sizes.sum() == count and sizes.max() - sizes.min() <= 1
    x, yy = blobs(10)
    predicted = cross_validate(x, yy, 3, 5)
    assert predicted.shape == yy.shape and (predicted == yy).mean() > 0.6


# -- the head folder ----------------------------------------------------------------------


def a_head(labels: tuple[str, ...] = ("cat", "dog", "eel"), dim: int = DIM) -> Head:
    rng = np.random.default_rng(3)
    return Head(
        weight=rng.normal(size=(len(labels), dim)).astype(np.float32),
        bias=rng.normal(size=len(labels)).astype(np.float32),
        labels=labels,
        model="tiny",
        model_revision=REVISION,
        info={"cross_validation": {"accuracy": 0.5}},
    )


def test_a_head_round_trips(tmp_path: Path) -> None:
    head = a_head()
    write_head(tmp_path / "h", head)
    assert sorted(os.listdir(tmp_path / "h")) == sorted(HEAD_FILES)  # nothing else
    back = read_head(tmp_path / "h")
    np.testing.assert_array_equal(back.weight, head.weight)
    np.testing.assert_array_equal(back.bias, head.bias)
    assert back.labels == head.labels and back.dim == DIM
    assert (back.model, back.model_revision) == ("tiny", REVISION)
    assert back.info == {"cross_validation": {"accuracy": 0.5}}
    config = json.loads((tmp_path / "h" / CONFIG_FILE).read_text())
    assert config["labels"] == ["cat", "dog", "eel"] and config["dim"] == DIM
    vectors = np.random.default_rng(0).normal(size=(4, DIM))
    import torch

    torch_probs = torch.softmax(back.logits(torch.from_numpy(vectors)), dim=-1).numpy()
    np.testing.assert_allclose(back.probabilities(vectors), torch_probs, atol=1e-5)


def _rewrite_config(folder: Path, **changes: object) -> None:
    path = folder / CONFIG_FILE
    config = json.loads(path.read_text())
    config.update(changes)
    path.write_text(json.dumps(config))


def _rewrite_tensors(folder: Path, **tensors: np.ndarray) -> None:
    from safetensors.numpy import save_file

    save_file(tensors, str(folder / WEIGHTS_FILE))


W = np.zeros((3, DIM), np.float32)
B = np.zeros(3, np.float32)

DAMAGE = {
    "no head.json": lambda f: (f / CONFIG_FILE).unlink(),
    "no weights": lambda f: (f / WEIGHTS_FILE).unlink(),
    "json not json": lambda f: (f / CONFIG_FILE).write_text("{labels: ["),
    "json of another format": lambda f: _rewrite_config(f, format="other/9"),
    "one label": lambda f: _rewrite_config(f, labels=["cat"]),
    "a label twice": lambda f: _rewrite_config(f, labels=["cat", "cat", "eel"]),
    "no revision": lambda f: _rewrite_config(f, model_revision=""),
    "dim not an int": lambda f: _rewrite_config(f, dim="16"),
    "dim not the weight's": lambda f: _rewrite_config(f, dim=DIM + 1),
    "labels not the weight's": lambda f: _rewrite_config(f, labels=["a", "b"]),
    "weights not safetensors": lambda f: (f / WEIGHTS_FILE).write_bytes(b"\x80\x04pickle"),
    "weights cut short": lambda f: (f / WEIGHTS_FILE).write_bytes(
        (f / WEIGHTS_FILE).read_bytes()[:-10]
    ),
    "float64 weight": lambda f: _rewrite_tensors(f, weight=W.astype(np.float64), bias=B),
    "no bias": lambda f: _rewrite_tensors(f, weight=W),
    "another tensor": lambda f: _rewrite_tensors(f, weight=W, bias=B, extra=B),
    "bias of another shape": lambda f: _rewrite_tensors(f, weight=W, bias=np.zeros(4, np.float32)),
    "a NaN": lambda f: _rewrite_tensors(f, weight=W + np.nan, bias=B),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_head_is_refused_in_one_line(tmp_path: Path, damage: str) -> None:
    folder = write_head(tmp_path / "h", a_head())
    DAMAGE[damage](folder)
    with pytest.raises(HeadError) as caught:
        read_head(folder)
    message = str(caught.value)
    assert "\n" not in message and "head=" in message, message
    assert caught.value.options == ("head",)


def test_no_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(HeadError, match="is not a folder"):
        read_head(tmp_path / "nothing")


def test_a_head_refuses_another_backbone() -> None:
    head = a_head()
    head.check_backbone("tiny", REVISION, DIM, "h")  # its own
    head.check_backbone("elsewhere/tiny", REVISION, None, "h")  # the same files, named anew
    with pytest.raises(HeadMismatchError, match="revision"):
        head.check_backbone("tiny", "sha256:ffffffffffffffff", DIM, "h")
    with pytest.raises(HeadMismatchError, match=f"{DIM} values"):
        head.check_backbone("tiny", REVISION, DIM * 2, "h")


# -- fit_head: examples and an embeddings file --------------------------------------------


def write_embeddings(
    path: Path,
    vectors: dict[str, np.ndarray],
    *,
    model: str = "tiny",
    revision: str = REVISION,
    windows: bool = False,
) -> Path:
    emb = EmbeddingsFile(path, model=model, protocol="uniform", model_revision=revision).lock()
    emb.start(resume=False)
    for cell, vector in vectors.items():
        # A window's vector is not the video's: fit_head must not take it.
        emb.write(cell, vector, [(0, -vector)] if windows else [])
    emb.finish()
    return path


def write_examples(path: Path, rows: list[tuple[str, str]], header=("path", "label")) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def dataset(tmp_path: Path):
    """An embeddings file of 3 x 10 videos' vectors (and their windows') and their
    examples, labels cat/dog/eel."""
    x, y = blobs(10)
    names = ["cat", "dog", "eel"]
    cells = [f"/videos/{names[label]}_{i:02d}.mp4" for i, label in enumerate(y)]
    emb = write_embeddings(tmp_path / "e.parquet", dict(zip(cells, x, strict=True)), windows=True)
    examples = write_examples(
        tmp_path / "ex.csv", [(c, names[label]) for c, label in zip(cells, y, strict=True)]
    )
    return emb, examples, cells, x, y


def test_fit_head_writes_a_head_and_its_cross_validation(tmp_path: Path, dataset) -> None:
    emb, examples, cells, x, y = dataset
    report = fit_head(emb, examples, tmp_path / "head")
    assert report.labels == ("cat", "dog", "eel")
    assert report.folds == 5 and report.examples == 30 and not report.missing
    assert [s.examples for s in report.per_label] == [10, 10, 10]
    assert sum(map(sum, report.confusion)) == 30
    assert report.accuracy == sum(s.correct for s in report.per_label) / 30
    assert report.accuracy > 0.6 and report.chance == pytest.approx(1 / 3)
    head = read_head(tmp_path / "head")
    assert (head.model, head.model_revision, head.dim) == ("tiny", REVISION, DIM)
    # The head is the fit on every example, on the vectors as stored (float16).
    stored = x.astype(np.float16).astype(np.float64)
    weight, bias = fit_linear(stored, y, 3)
    np.testing.assert_allclose(head.weight, weight, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(head.bias, bias, rtol=1e-5, atol=1e-6)
    info = head.info
    assert info["training"] == {
        "examples": 30,
        "per_label": {"cat": 10, "dog": 10, "eel": 10},
        "without_vector": 0,
    }
    assert info["cross_validation"]["folds"] == 5
    assert info["cross_validation"]["accuracy"] == pytest.approx(report.accuracy, abs=1e-6)
    assert info["regularisation"]["l2"] == DEFAULT_L2
    assert info["vectors"]["protocol"] == "uniform" and info["vectors"]["dtype"] == "float16"
    assert info["vmae_version"]


def test_examples_without_a_vector_are_reported_and_skipped(tmp_path: Path, dataset) -> None:
    emb, _, cells, _, y = dataset
    names = ["cat", "dog", "eel"]
    rows = [(c, names[label]) for c, label in zip(cells, y, strict=True)]
    rows += [("/videos/unseen_1.mp4", "cat"), ("/videos/unseen_2.mp4", "dog")]
    rows += [("/videos/unlabelled.mp4", ""), (cells[0], "cat")]  # and a duplicate, alike
    report = fit_head(emb, write_examples(tmp_path / "ex2.csv", rows), tmp_path / "head")
    assert report.missing == ("/videos/unseen_1.mp4", "/videos/unseen_2.mp4")
    assert report.unlabelled == 1 and report.examples == 30


def test_relative_example_paths_resolve_from_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    x, y = blobs(4)
    clips = tmp_path / "clips"
    cells = [str(clips / f"v{i}.mp4") for i in range(len(y))]
    emb = write_embeddings(tmp_path / "e.parquet", dict(zip(cells, x, strict=True)))
    rows = [(f"clips/./v{i}.mp4", "ab"[label % 2] + str(label)) for i, label in enumerate(y)]
    examples = write_examples(tmp_path / "ex.csv", rows)
    monkeypatch.chdir(tmp_path)
    assert read_examples(examples).keys == tuple(cells)
    report = fit_head(emb, examples, tmp_path / "head")
    assert report.examples == len(y) and report.folds == 4


@pytest.mark.parametrize(
    ("rows", "match"),
    [
        ([("/videos/cat_00.mp4", "cat"), ("/videos/cat_00.mp4", "dog")], "two labels"),
        ([(f"/videos/cat_0{i}.mp4", "cat") for i in range(5)], "one label"),
        ([("/videos/cat_00.mp4", "cat"), ("/videos/dog_10.mp4", "dog")], "2 examples"),
        ([("/nowhere/a.mp4", "cat"), ("/nowhere/b.mp4", "dog")], "none of the 2 examples"),
    ],
)
def test_examples_a_head_cannot_come_from_are_refused(
    tmp_path: Path, dataset, rows: list[tuple[str, str]], match: str
) -> None:
    emb = dataset[0]
    with pytest.raises(FitError, match=match) as caught:
        fit_head(emb, write_examples(tmp_path / "bad.csv", rows), tmp_path / "head")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "head").exists()


def test_examples_need_their_columns(tmp_path: Path, dataset) -> None:
    bad = write_examples(tmp_path / "bad.csv", [("a", "b")], header=("file", "label"))
    with pytest.raises(FitError, match="columns path and label"):
        fit_head(dataset[0], bad, tmp_path / "head")


def test_the_output_folder_is_the_heads_alone(tmp_path: Path, dataset) -> None:
    emb, examples = dataset[:2]
    out = tmp_path / "head"
    fit_head(emb, examples, out)
    with pytest.raises(FitError, match="overwrite=True"):
        fit_head(emb, examples, out)
    fit_head(emb, examples, out, overwrite=True, l2=0.1)
    assert read_head(out).info["regularisation"]["l2"] == 0.1
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(FitError, match="other files"):
        fit_head(emb, examples, tmp_path / "busy", overwrite=True)
    with pytest.raises(FitError, match="l2"):
        fit_head(emb, examples, tmp_path / "h2", l2=0)


def test_an_older_embeddings_file_takes_the_model_folders_revision(
    tmp_path: Path, dataset, tiny_model_dir: Path
) -> None:
    from vmae_cli.provenance import model_revision

    _, examples, cells, x, _ = dataset
    vectors = dict(zip(cells, x, strict=True))
    old = write_embeddings(
        tmp_path / "old.parquet", vectors, model=str(tiny_model_dir), revision=""
    )
    assert describe(old).model_revision == ""
    notices: list[str] = []
    report = fit_head(old, examples, tmp_path / "head", on_notice=notices.append)
    assert report.head.model_revision == model_revision(str(tiny_model_dir))
    assert len(notices) == 1 and "does not record" in notices[0]
    hub = write_embeddings(tmp_path / "hub.parquet", vectors, model="org/model", revision="")
    with pytest.raises(FitError, match="cannot be known"):
        fit_head(hub, examples, tmp_path / "head2")


def test_a_missing_or_foreign_embeddings_file_is_refused(tmp_path: Path, dataset) -> None:
    examples = dataset[1]
    with pytest.raises(FitError, match="no embeddings file"):
        fit_head(tmp_path / "none.parquet", examples, tmp_path / "head")
    rows = tmp_path / "rows.csv"
    rows.write_text("path,label\n")
    with pytest.raises(FitError, match="not a vmae embeddings file"):
        fit_head(rows, examples, tmp_path / "head")


# -- the command --------------------------------------------------------------------------


def test_fit_head_prints_data_on_stdout_and_its_tables_on_stderr(tmp_path: Path, dataset) -> None:
    emb, examples = dataset[:2]
    out = tmp_path / "head"
    result = runner.invoke(app, ["fit-head", str(emb), str(examples), "-o", str(out)])
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == f"{out}\n"
    assert "5-fold cross-validated accuracy" in result.stderr
    assert "confusion" in result.stderr
    for label in ("cat", "dog", "eel"):
        assert label in result.stderr
    assert (out / WEIGHTS_FILE).exists()
    again = runner.invoke(app, ["fit-head", str(emb), str(examples), "-o", str(out)])
    assert again.exit_code == EXIT_USAGE and again.stdout == ""
    assert again.stderr.strip().count("\n") == 0 and "--overwrite" in again.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["fit-head"],
        ["fit-head", "e.parquet", "ex.csv"],  # no -o
        ["fit-head", "none.parquet", "ex.csv", "-o", "h"],
        ["fit-head", "e.parquet", "none.csv", "-o", "h"],
        ["fit-head", "e.parquet", "ex.csv", "-o", "h", "--l2", "-1"],
    ],
)
def test_fit_head_usage_errors(
    tmp_path: Path, dataset, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_USAGE, result.stderr
    assert result.stdout == ""


# -- end to end: generated videos, a random backbone, classify --head ---------------------

#: Per class: the object's colour, its motion (px per frame) and its texture.
CLASSES = {
    "red stripes right": ((220, 40, 40), (1.0, 0.0), "stripes"),
    "blue checks down": ((40, 60, 220), (0.0, 1.0), "checks"),
    "green plain still": ((40, 200, 60), (0.0, 0.0), "plain"),
}
VIDEOS_PER_CLASS = 20
VIDEO_PX = 64
VIDEO_FRAMES = 24  # about 1 s at 25 fps


@pytest.fixture(scope="module")
def curated(tmp_path_factory: pytest.TempPathFactory):
    """Three visibly different classes of generated videos, classified by a random-weight
    tiny backbone with embeddings; the examples CSV labels every one."""
    from tiny_model import make_tiny_model

    from tools.videogen import moving_square, write_video

    root = tmp_path_factory.mktemp("curated")
    backbone = make_tiny_model(root / "backbone", seed=0)
    videos = root / "videos"
    rng = np.random.default_rng(7)
    examples = []
    for c, (label, (colour, motion, texture)) in enumerate(CLASSES.items()):
        for i in range(VIDEOS_PER_CLASS):
            path = write_video(
                videos / f"c{c}_{i:02d}.mp4",
                codec="h264",
                width=VIDEO_PX,
                height=VIDEO_PX,
                num_frames=VIDEO_FRAMES,
                pattern=moving_square(
                    colour, motion, texture, rng, size_px=VIDEO_PX, frames=VIDEO_FRAMES
                ),
            )
            examples.append((str(path), label))
    emb = root / "emb.parquet"
    result = runner.invoke(
        app,
        ["classify", str(videos), "-m", str(backbone), "-o", str(root / "rows.csv")]
        + ["--embeddings", str(emb), "--device", "cpu", "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_OK, result.stderr
    return {
        "root": root,
        "backbone": backbone,
        "videos": videos,
        "embeddings": emb,
        "examples": write_examples(root / "examples.csv", examples),
    }


@pytest.mark.slow
def test_a_head_fitted_on_a_random_backbone_tells_the_classes_apart(curated) -> None:
    root = curated["root"]
    head = root / "head"
    result = runner.invoke(
        app, ["fit-head", str(curated["embeddings"]), str(curated["examples"]), "-o", str(head)]
    )
    assert result.exit_code == EXIT_OK, result.stderr
    print(result.stderr)  # the figures, for the record (pytest -s)
    fitted = read_head(head)
    accuracy = fitted.info["cross_validation"]["accuracy"]
    chance = 1 / len(CLASSES)
    assert accuracy > 1.5 * chance, result.stderr
    assert describe(curated["embeddings"]).model_revision == fitted.model_revision
    assert fitted.model_revision.startswith("sha256:")


@pytest.mark.slow
def test_classify_with_the_head_scores_as_the_head_does_on_the_stored_vectors(curated) -> None:
    import pyarrow.parquet as pq

    from vmae_cli.embeddings import read_video_vectors

    root = curated["root"]
    head_dir = root / "head-rows"
    fit_head(curated["embeddings"], curated["examples"], head_dir)
    head = read_head(head_dir)
    out = root / "rows-head.jsonl"
    result = runner.invoke(
        app,
        ["classify", str(curated["videos"]), "-m", str(curated["backbone"])]
        + ["--head", str(head_dir), "-o", str(out), "--top-k", "3", "--device", "cpu", "--quiet"],
        catch_exceptions=False,
    )
    assert result.exit_code == EXIT_OK, result.stderr
    rows = read_rows(out)
    assert len(rows) == len(CLASSES) * VIDEOS_PER_CLASS
    stored = read_video_vectors(curated["embeddings"], [r["path"] for r in rows])
    assert pq.ParquetFile(curated["embeddings"]).schema_arrow.metadata[REVISION_KEY.encode()]
    expected = head.probabilities(np.stack([stored[r["path"]] for r in rows]))
    worst = 0.0
    for row, probs in zip(rows, expected, strict=True):
        assert row["status"] == "ok" and row["labels_from"].startswith("head:sha256:")
        assert row["label"] == head.labels[int(probs.argmax())], row
        for entry in row["top_k"]:
            worst = max(worst, abs(entry["score"] - probs[head.labels.index(entry["label"])]))
    # The rows' vectors are float32, the stored ones float16 (the default embeddings dtype).
    print(f"largest score difference, rows vs the head on the stored vectors: {worst:.1e}")
    assert worst < 1e-3, worst
    assert math.isclose(sum(e["score"] for e in rows[0]["top_k"]), 1.0, abs_tol=1e-5)


@pytest.mark.slow
def test_a_classifier_reads_and_hashes_its_head_once(
    curated, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The labels are settled when the classifier is made; loading the weights later uses
    # them (a head folder rewritten in between cannot give the rows another head's scores).
    from vmae_cli import heads, labelsource
    from vmae_cli.pipeline import Classifier

    head_dir = curated["root"] / "head-once"
    fit_head(curated["embeddings"], curated["examples"], head_dir)
    calls = {"read_head": 0, "head_id": 0}

    def counted(name: str, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(heads, "read_head", counted("read_head", heads.read_head))
    monkeypatch.setattr(labelsource, "head_id", counted("head_id", labelsource.head_id))
    clf = Classifier(str(curated["backbone"]), device="cpu", head=str(head_dir))
    assert clf.loaded.head is clf.head and clf.loaded.labels_from == clf.labels_from
    assert calls == {"read_head": 1, "head_id": 1}


@pytest.mark.slow
def test_a_head_is_refused_on_another_backbone_and_with_text_labels(curated) -> None:
    from tiny_model import make_tiny_model

    root = curated["root"]
    head_dir = root / "head-refused"
    fit_head(curated["embeddings"], curated["examples"], head_dir)
    other = make_tiny_model(root / "other-backbone", seed=1)
    video = str(next(curated["videos"].iterdir()))
    base = ["classify", video, "-o", str(root / "refused.csv"), "--device", "cpu", "--quiet"]
    result = runner.invoke(app, [*base, "-m", str(other), "--head", str(head_dir)])
    assert result.exit_code == EXIT_USAGE
    assert result.stderr.strip().count("\n") == 0 and "--head" in result.stderr
    assert "revision" in result.stderr
    assert not (root / "refused.csv").exists()
    (head_dir / WEIGHTS_FILE).unlink()
    result = runner.invoke(app, [*base, "-m", str(curated["backbone"]), "--head", str(head_dir)])
    assert result.exit_code == EXIT_USAGE and "head.safetensors" in result.stderr
    fit_head(curated["embeddings"], curated["examples"], head_dir, overwrite=True)
    result = runner.invoke(
        app,
        [*base, "-m", str(curated["backbone"]), "--head", str(head_dir), "--labels", "a,b"],
    )
    assert result.exit_code == EXIT_USAGE and result.stderr.strip().count("\n") == 0


def test_weights_and_bias_keys_are_what_the_folder_holds(tmp_path: Path) -> None:
    from safetensors import safe_open

    folder = write_head(tmp_path / "h", a_head())
    with safe_open(str(folder / WEIGHTS_FILE), framework="numpy") as f:
        assert set(f.keys()) == {WEIGHT_KEY, BIAS_KEY}
        assert f.get_tensor(WEIGHT_KEY).dtype == np.float32
