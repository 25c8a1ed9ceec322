"""--segments, the numbers: lengths (Span), defaults (Segments), which frames each window holds
(plan_windows, and WindowTracker for a decoder that learns the frame count only at the end),
and the one-line timeline of a video's windows."""

from __future__ import annotations

import math

import pytest

from vmae_cli.segments import (
    DEFAULT_WINDOW_STRIDE,
    FALLBACK_FPS,
    TIMELINE_MAX_CHARS,
    Segments,
    SegmentsError,
    Span,
    TimelineEntry,
    WindowGeometry,
    WindowTracker,
    plan_windows,
    timeline,
)

# --------------------------------------------------------------------------------------
# Span: "64f" or "2s"
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "unit", "shown"),
    [
        ("64f", 64, "f", "64f"),
        ("1f", 1, "f", "1f"),
        ("64.0f", 64, "f", "64f"),
        (" 16F ", 16, "f", "16f"),
        ("2s", 2.0, "s", "2s"),
        ("0.5s", 0.5, "s", "0.5s"),
        (".5s", 0.5, "s", "0.5s"),
        ("5.s", 5.0, "s", "5s"),
        ("1.25 S", 1.25, "s", "1.25s"),
        ("3600s", 3600.0, "s", "3600s"),
    ],
)
def test_span_parses_frames_and_seconds(text: str, value: float, unit: str, shown: str) -> None:
    span = Span.parse(text)
    assert (span.value, span.unit) == (value, unit)
    assert span == Span(value, unit)
    assert str(span) == shown
    assert Span.parse(str(span)) == span  # what rows show parses back


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "64",  # no unit
        "f",
        "s",
        "2m",  # minutes are not a unit
        "64 frames",
        "2ss",
        "-1f",
        "-2s",
        "+2s",
        "0f",
        "0s",
        "0.0s",
        "1.5f",  # frames are whole
        "1e3f",
        "nan s",
        "inf s",
        "1,5s",
        "abc",
    ],
)
def test_span_refuses_what_is_not_a_positive_length(text: str) -> None:
    with pytest.raises(SegmentsError):
        Span.parse(text)


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (0, "f"),
        (-3, "f"),
        (2.5, "f"),
        (0, "s"),
        (-1.0, "s"),
        (math.inf, "s"),
        (math.nan, "s"),
        (1, "m"),
    ],
)
def test_span_refuses_bad_values_when_made_directly(value: float, unit: str) -> None:
    with pytest.raises(SegmentsError):
        Span(value, unit)


def test_segments_error_is_a_value_error() -> None:
    """The CLI and callers catching ValueError see it too."""
    assert issubclass(SegmentsError, ValueError)


@pytest.mark.parametrize(
    ("text", "fps", "frames"),
    [
        ("64f", 25.0, 64),  # frames ignore the frame rate
        ("64f", 1.0, 64),
        ("2s", 25.0, 50),
        ("2s", 30.0, 60),
        ("1s", 23.976, 24),
        ("0.5s", 25.0, 13),  # 12.5: halves round up
        ("2.5s", 1.0, 3),  # round() would give 2 (to even)
        ("0.1s", 25.0, 3),  # 2.5
        ("0.3s", 25.0, 8),  # 7.5
        ("0.06s", 25.0, 2),  # 1.5
        ("0.5s", 29.97, 15),  # 14.985
        ("0.02s", 25.0, 1),  # 0.5 rounds up to 1
        ("0.01s", 25.0, 1),  # 0.25: at least one frame
        ("0.001s", 1.0, 1),
    ],
)
def test_span_in_frames(text: str, fps: float, frames: int) -> None:
    assert Span.parse(text).frames(fps) == frames


# --------------------------------------------------------------------------------------
# Segments: defaults, name, geometry
# --------------------------------------------------------------------------------------


def f(n: int) -> Span:
    return Span(n, "f")


def s(x: float) -> Span:
    return Span(x, "s")


@pytest.mark.parametrize(
    ("segments", "t", "stride", "window", "hop"),
    [
        # The default window is the model's clip: T frames every S.
        (Segments(), 16, 4, f(64), f(64)),
        (Segments(), 16, 2, f(32), f(32)),
        (Segments(), 8, 1, f(8), f(8)),
        # Frame stride 0 (frames spread over the whole video) takes every 4th frame.
        (Segments(), 16, 0, f(16 * DEFAULT_WINDOW_STRIDE), f(16 * DEFAULT_WINDOW_STRIDE)),
        (Segments(), 8, 0, f(32), f(32)),
        # The hop defaults to the window, in the window's unit.
        (Segments(window=s(2)), 16, 0, s(2), s(2)),
        (Segments(window=f(10)), 16, 4, f(10), f(10)),
        (Segments(hop=f(16)), 16, 0, f(64), f(16)),
        (Segments(hop=s(0.5)), 8, 4, f(32), s(0.5)),
        (Segments(s(2), f(7)), 16, 4, s(2), f(7)),
    ],
)
def test_resolved_fills_in_the_defaults(
    segments: Segments, t: int, stride: int, window: Span, hop: Span
) -> None:
    resolved = segments.resolved(t, stride)
    assert resolved == Segments(window, hop)
    assert resolved.resolved(t, stride) == resolved  # resolving twice changes nothing


def test_name() -> None:
    assert Segments().name == "segments(window=clip,hop=window)"
    assert Segments().resolved(16, 0).name == "segments(window=64f,hop=64f)"
    assert Segments().resolved(16, 2).name == "segments(window=32f,hop=32f)"
    assert Segments(s(2), s(0.5)).name == "segments(window=2s,hop=0.5s)"
    assert Segments(Span.parse("2.0s")).resolved(16, 4).name == "segments(window=2s,hop=2s)"
    assert Segments(hop=f(16)).name == "segments(window=clip,hop=16f)"


@pytest.mark.parametrize(
    ("segments", "t", "fps", "geometry", "note"),
    [
        (Segments(f(64), f(64)), 16, 25.0, WindowGeometry(64, 64, 16), ""),
        (Segments(f(64), f(16)), 16, None, WindowGeometry(64, 16, 16), ""),  # frames: no fps
        (Segments(s(2), s(1)), 16, 25.0, WindowGeometry(50, 25, 16), ""),
        (Segments(s(2), f(10)), 16, 30.0, WindowGeometry(60, 10, 16), ""),
        (Segments(s(0.5), s(0.5)), 8, 25.0, WindowGeometry(13, 13, 8), ""),  # halves up
        # No frame rate: seconds at 30 fps, said in the note (a hop in seconds too).
        (
            Segments(s(2), s(1)),
            16,
            None,
            WindowGeometry(60, 30, 16),
            "frame rate unknown: seconds taken at 30 fps",
        ),
        (
            Segments(f(64), s(1)),
            16,
            0.0,
            WindowGeometry(64, 30, 16),
            "frame rate unknown: seconds taken at 30 fps",
        ),
        # A window shorter than T frames is widened to T.
        (
            Segments(s(0.2), f(3)),
            8,
            25.0,
            WindowGeometry(8, 3, 8),
            "window 0.2s is 5 frames, fewer than the model's 8: widened to 8 frames",
        ),
        (
            Segments(f(4), f(4)),
            16,
            25.0,
            WindowGeometry(16, 4, 16),
            "window 4f is 4 frames, fewer than the model's 16: widened to 16 frames",
        ),
        # Both, in that order.
        (
            Segments(s(0.1), s(0.1)),
            8,
            None,
            WindowGeometry(8, 3, 8),
            "frame rate unknown: seconds taken at 30 fps; "
            "window 0.1s is 3 frames, fewer than the model's 8: widened to 8 frames",
        ),
    ],
)
def test_geometry(
    segments: Segments, t: int, fps: float | None, geometry: WindowGeometry, note: str
) -> None:
    assert segments.geometry(t, fps) == (geometry, note)


def test_fallback_fps_is_30() -> None:
    assert FALLBACK_FPS == 30.0
    assert Segments(s(1), s(1)).geometry(8, -5.0)[0] == WindowGeometry(30, 30, 8)


def test_geometry_needs_resolved_settings() -> None:
    with pytest.raises(ValueError):
        Segments().geometry(16, 25.0)
    with pytest.raises(ValueError):
        Segments(window=f(64)).geometry(16, 25.0)


@pytest.mark.parametrize(("span", "hop", "frames"), [(0, 1, 1), (1, 0, 1), (1, 1, 0), (-4, 4, 4)])
def test_window_geometry_refuses_empty_windows(span: int, hop: int, frames: int) -> None:
    with pytest.raises(SegmentsError):
        WindowGeometry(span, hop, frames)


def test_offsets_are_floor_of_j_span_over_t() -> None:
    # The default window: T frames every S are exactly start, start + S, ...
    assert WindowGeometry(64, 64, 16).offsets == tuple(range(0, 64, 4))
    assert WindowGeometry(16, 5, 16).offsets == tuple(range(16))
    assert WindowGeometry(10, 3, 4).offsets == (0, 2, 5, 7)
    assert WindowGeometry(10, 3, 8).offsets == (0, 1, 2, 3, 5, 6, 7, 8)
    for span, t in [(13, 8), (50, 16), (100, 16), (9, 9)]:
        assert WindowGeometry(span, 1, t).offsets == tuple(j * span // t for j in range(t))


# --------------------------------------------------------------------------------------
# plan_windows and WindowTracker
# --------------------------------------------------------------------------------------

#: (span, hop, T): no overlap, overlap, a hop of one frame, gaps between windows (hop >
#: span), windows whose frames skip frames, windows of one frame.
GEOMETRIES = [
    (8, 8, 8),
    (8, 5, 8),
    (10, 3, 8),
    (10, 10, 4),
    (16, 16, 16),
    (64, 64, 16),
    (64, 32, 16),
    (64, 16, 16),
    (50, 25, 16),
    (6, 9, 3),
    (5, 12, 2),
    (12, 7, 5),
    (7, 1, 4),
    (1, 1, 1),
    (1, 3, 1),
    (3, 2, 3),
]
FRAME_COUNTS = [
    1,
    2,
    3,
    5,
    6,
    7,
    8,
    9,
    10,
    11,
    15,
    16,
    17,
    23,
    24,
    25,
    31,
    63,
    64,
    65,
    100,
    127,
    128,
    129,
    300,
    1001,
]


@pytest.mark.parametrize(("span", "hop", "t"), GEOMETRIES)
def test_plan_windows_properties(span: int, hop: int, t: int) -> None:
    g = WindowGeometry(span, hop, t)
    for n in FRAME_COUNTS:
        try:
            _check_plan(n, g)
        except AssertionError as exc:
            raise AssertionError(f"{n} frames, {g}: {exc}") from exc


def _check_plan(n: int, g: WindowGeometry) -> None:
    span, hop, t = g.span, g.hop, g.frames
    windows = plan_windows(n, g)
    assert windows, "every video with a frame gets a window"
    assert [w.index for w in windows] == list(range(len(windows)))
    assert windows[0].start_frame == 0
    assert windows[-1].end_frame == n - 1
    for w in windows:
        assert len(w.frame_indices) == t
        assert w.start_frame <= w.end_frame <= n - 1  # no window past the end
        assert all(w.start_frame <= i <= w.end_frame for i in w.frame_indices)
        assert w.frame_indices[0] == w.start_frame
        assert list(w.frame_indices) == sorted(w.frame_indices)
    if n < span:
        # One window over the whole video; frames past its end repeat the last frame.
        (w,) = windows
        assert (w.start_frame, w.end_frame) == (0, n - 1)
        assert w.frame_indices == tuple(min(o, n - 1) for o in g.offsets)
        return
    # Full windows: span frames each, the model's frames at the offsets.
    for w in windows:
        assert w.end_frame - w.start_frame + 1 == span
        assert w.frame_indices == tuple(w.start_frame + o for o in g.offsets)
    # Starts step by hop, all but the last, which may be placed to end on the last frame.
    starts = [w.start_frame for w in windows]
    assert starts[:-1] == [k * hop for k in range(len(windows) - 1)]
    regular = (n - span) // hop + 1
    assert g.regular_count(n) == regular
    if (n - span) % hop == 0:
        assert len(windows) == regular
        assert starts[-1] == (regular - 1) * hop
    else:
        # The regular windows stop short of the last frame: one more ends on it, starting
        # after the last regular one and less than a hop after it.
        assert len(windows) == regular + 1
        assert starts[-1] == n - span
        assert starts[-2] < starts[-1] < starts[-2] + hop
    # Without gaps (hop <= span), the windows cover every frame.
    if hop <= span:
        covered = set().union(*(range(w.start_frame, w.end_frame + 1) for w in windows))
        assert covered == set(range(n))


def _reference_windows(n: int, span: int, hop: int, t: int) -> list[tuple[int, int, tuple]]:
    """The plan, written out independently: regular starts every hop, one more at the end."""
    offsets = [(j * span) // t for j in range(t)]
    if n < span:
        return [(0, n - 1, tuple(min(o, n - 1) for o in offsets))]
    starts = list(range(0, n - span + 1, hop))
    if starts[-1] + span - 1 < n - 1:
        starts.append(n - span)
    return [(a, a + span - 1, tuple(a + o for o in offsets)) for a in starts]


@pytest.mark.parametrize(("span", "hop", "t"), GEOMETRIES)
def test_plan_windows_matches_a_reference(span: int, hop: int, t: int) -> None:
    g = WindowGeometry(span, hop, t)
    for n in range(1, 3 * (span + hop) + 2):
        got = [(w.start_frame, w.end_frame, w.frame_indices) for w in plan_windows(n, g)]
        assert got == _reference_windows(n, span, hop, t), n


def test_plan_windows_examples() -> None:
    # The default window of a 16-frame model on 150 frames: 0-63, 64-127, and 86-149.
    windows = plan_windows(150, WindowGeometry(64, 64, 16))
    assert [(w.start_frame, w.end_frame) for w in windows] == [(0, 63), (64, 127), (86, 149)]
    assert windows[2].frame_indices == tuple(range(86, 150, 4))
    # A 5-frame video and a 10-frame window of 4 frames: 0, 2, 4 and the last again.
    (short,) = plan_windows(5, WindowGeometry(10, 3, 4))
    assert (short.start_frame, short.end_frame, short.frame_indices) == (0, 4, (0, 2, 4, 4))
    # One frame: T copies of it.
    (one,) = plan_windows(1, WindowGeometry(64, 64, 16))
    assert one.frame_indices == (0,) * 16


@pytest.mark.parametrize("n", [0, -1])
def test_no_frames_no_windows(n: int) -> None:
    assert plan_windows(n, WindowGeometry(8, 8, 8)) == []


def _drive(tracker: WindowTracker, n: int) -> list:
    """Feed a tracker frames 0..n-1 as a sequential decoder does, then the count."""
    got = []
    for i in range(n):
        w = tracker.completed_by(i)
        if w is not None:
            assert w.end_frame == i, "a regular window comes as soon as its last frame is read"
            got.append(w)
    return got + tracker.finish(n)


@pytest.mark.parametrize(("span", "hop", "t"), GEOMETRIES)
def test_window_tracker_gives_the_planned_windows(span: int, hop: int, t: int) -> None:
    g = WindowGeometry(span, hop, t)
    for n in FRAME_COUNTS:
        assert _drive(WindowTracker(g), n) == plan_windows(n, g), n


@pytest.mark.parametrize(("span", "hop", "t"), GEOMETRIES)
def test_window_tracker_wants_exactly_the_frames_of_regular_windows(
    span: int, hop: int, t: int
) -> None:
    """``wanted`` is true for every frame a regular window gives the model (whatever the
    frame count turns out to be), and only for those."""
    g = WindowGeometry(span, hop, t)
    tracker = WindowTracker(g)
    for n in FRAME_COUNTS:
        regular = plan_windows(n, g)[: g.regular_count(n)]
        assert all(tracker.wanted(i) for w in regular for i in w.frame_indices), n
    # Every regular window of a long video, against each frame.
    horizon = 4 * (span + hop)
    used = {k * hop + o for k in range(horizon // hop + 1) for o in g.offsets}
    for i in range(horizon):
        assert tracker.wanted(i) == (i in used), i


def test_window_tracker_holds_back_only_what_the_count_places() -> None:
    g = WindowGeometry(10, 10, 4)
    tracker = WindowTracker(g)
    emitted = [w for i in range(25) if (w := tracker.completed_by(i)) is not None]
    assert [(w.start_frame, w.end_frame) for w in emitted] == [(0, 9), (10, 19)]
    assert tracker.emitted == 2
    (last,) = tracker.finish(25)
    assert (last.index, last.start_frame, last.end_frame) == (2, 15, 24)
    # A video that ends exactly on a regular window gets nothing more.
    tracker = WindowTracker(g)
    assert len([i for i in range(20) if tracker.completed_by(i) is not None]) == 2
    assert tracker.finish(20) == []


# --------------------------------------------------------------------------------------
# timeline
# --------------------------------------------------------------------------------------


def e(start: float | None, end: float | None, label: str, score: float) -> TimelineEntry:
    return TimelineEntry(start, end, label, score)


def test_timeline_merges_consecutive_windows_with_the_same_label() -> None:
    entries = [
        e(0.0, 2.56, "playing guitar", 0.8),
        e(2.56, 5.12, "playing guitar", 0.6),
        e(5.12, 7.68, "dancing", 0.9),
        e(7.68, 10.24, "playing guitar", 0.5),
        e(10.24, 12.8, "playing guitar", 0.3),
        e(12.8, 15.36, "playing guitar", 0.4),
    ]
    assert timeline(entries) == (
        "0.0-5.1 playing guitar 0.70; 5.1-7.7 dancing 0.90; 7.7-15.4 playing guitar 0.40"
    )


def test_timeline_of_overlapping_windows_spans_first_start_to_last_end() -> None:
    entries = [e(0.0, 2.0, "a", 0.5), e(1.0, 3.0, "a", 0.7), e(2.0, 4.0, "b", 0.1)]
    assert timeline(entries) == "0.0-3.0 a 0.60; 2.0-4.0 b 0.10"


def test_timeline_shows_unknown_times_as_question_marks() -> None:
    assert timeline([e(None, None, "a", 0.25)]) == "?-? a 0.25"
    assert timeline([e(None, 1.0, "a", 0.5), e(1.0, None, "a", 0.5)]) == "?-? a 0.50"
    assert (
        timeline([e(0.0, 1.0, "a", 0.5), e(1.0, None, "b", 0.5)]) == "0.0-1.0 a 0.50; 1.0-? b 0.50"
    )


def test_timeline_of_nothing_is_empty() -> None:
    assert timeline([]) == ""


def test_timeline_takes_any_iterable() -> None:
    assert timeline(e(float(i), i + 1.0, "a", 1.0) for i in range(3)) == "0.0-3.0 a 1.00"


def test_timeline_is_cut_with_the_number_left_out() -> None:
    entries = [e(float(i), i + 1.0, "ab"[i % 2], 0.5) for i in range(100)]
    full = timeline(entries, max_chars=10_000)
    parts = full.split("; ")
    assert len(parts) == 100  # nothing to merge: the labels alternate
    for max_chars in (20, 60, 150, 299):
        cut = timeline(entries, max_chars=max_chars)
        kept, _, rest = cut.rpartition("; ... (")
        assert rest.endswith(" more)")
        shown = kept.split("; ")
        assert shown == parts[: len(shown)]
        assert int(rest[: -len(" more)")]) == len(parts) - len(shown)
        assert len(kept) <= max_chars
        # One more part would not have fitted.
        assert len(kept + "; " + parts[len(shown)]) > max_chars


def test_timeline_keeps_its_first_part_even_when_longer_than_the_limit() -> None:
    entries = [e(0.0, 1.0, "a very long label indeed", 0.5), e(1.0, 2.0, "b", 0.5)]
    assert timeline(entries, max_chars=5) == "0.0-1.0 a very long label indeed 0.50; ... (1 more)"
    assert timeline(entries[:1], max_chars=5) == "0.0-1.0 a very long label indeed 0.50"


def test_timeline_that_fits_is_not_cut() -> None:
    entries = [e(0.0, 1.0, "a", 0.5), e(1.0, 2.0, "b", 0.5)]
    text = timeline(entries)
    assert text == "0.0-1.0 a 0.50; 1.0-2.0 b 0.50"
    assert timeline(entries, max_chars=len(text)) == text
    assert timeline(entries, max_chars=len(text) - 1) == "0.0-1.0 a 0.50; ... (1 more)"


def test_timeline_default_limit() -> None:
    entries = [e(i * 2.0, i * 2.0 + 2.0, f"label {i % 7}", 0.5) for i in range(1000)]
    text = timeline(entries)
    kept, _, _ = text.rpartition("; ... (")
    assert len(kept) <= TIMELINE_MAX_CHARS == 300
    assert text.endswith(" more)")
