"""Videos: decoding with sampling, bad files as one line, tracking, smoothing (off: the photos' answers),
the per-frame CSV (valid after an interruption), the summary and timeline, the annotated video, and the
Python iterator over numpy frames. The clips are made here (tests/helpers/videos.py); the real ones in
../shared/videos are for the benchmark (benchmarks/video.py) and the browser test."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import photos as face_photos
from helpers import videos
from helpers.cli import smile_env
from helpers.photos import needs_mtcnn

pytest.importorskip("av")

from smile.cli import main  # noqa: E402
from smile.video.decode import VideoError, VideoReader, array_frames  # noqa: E402
from smile.video.smoothing import Ema, TrackSmoother  # noqa: E402
from smile.video.tracking import FaceTracker  # noqa: E402


@pytest.fixture(scope="module")
def predictor():
    import smile

    return smile.load()


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two faces side by side, drifting apart, 8 frames at 10 fps."""
    path = tmp_path_factory.mktemp("clips") / "two.mp4"
    return videos.write_clip(path, videos.moving_faces(face_photos.faces()[:2], count=8))


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --- decoding ---------------------------------------------------------------------------------------


def test_frames_are_sampled_by_count_or_by_rate(tmp_path: Path) -> None:
    clip = videos.write_clip(tmp_path / "noise.mp4", videos.noise_frames(20), fps=10)
    with VideoReader(clip) as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps, reader.info.frames) == (
            64,
            48,
            10,
            20,
        )
        frames = list(reader)
    assert [f.index for f in frames] == list(range(20))
    assert [f.time for f in frames] == pytest.approx([i / 10 for i in range(20)])
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8
    with VideoReader(clip, every=3) as reader:
        assert [f.index for f in reader] == [0, 3, 6, 9, 12, 15, 18] and reader.rate == pytest.approx(10 / 3)
    with VideoReader(clip, fps=4) as reader:
        kept = [f.time for f in reader]
    assert kept == pytest.approx([0.0, 0.3, 0.5, 0.8, 1.0, 1.3, 1.5, 1.8]) and reader.decoded == 20
    with pytest.raises(ValueError, match="not both"):
        VideoReader(clip, every=2, fps=3)


def test_numpy_frames_are_timed_by_rate_or_pairs_and_bgr_is_turned() -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 255  # red
    frames = list(array_frames([rgb[..., ::-1]] * 5, rate=25, channels="BGR", every=2))
    assert [(f.index, f.time) for f in frames] == [(0, 0.0), (2, 0.08), (4, 0.16)]
    assert (frames[0].rgb[..., 0] == 255).all() and (frames[0].rgb[..., 2] == 0).all()
    paired = list(array_frames([(0.0, rgb), (0.5, rgb), (0.55, rgb), (1.2, rgb)], fps=2))
    assert [f.time for f in paired] == [0.0, 0.5, 1.2]


def _cli(args: list[str], cwd: Path, capsys) -> tuple[int, str, str]:
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        code = main(args)
    finally:
        os.chdir(previous)
    out, err = capsys.readouterr()
    return code, out, err


def _bad_files(folder: Path) -> dict[str, tuple[Path, str]]:
    """Each kind of bad input and the words its one line must hold."""
    good = videos.write_clip(folder / "good.mp4", videos.noise_frames(30), fps=10)  # index at the end
    data = good.read_bytes()
    (folder / "notes.mp4").write_text("these are my notes, not a video\n")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "cut.mp4").write_bytes(data[: len(data) // 2])  # the index (moov) was at the end
    (folder / "codec.mp4").write_bytes(data.replace(b"avc1", b"zzzz"))
    import av

    with av.open(str(folder / "zero.mp4"), "w") as container:  # a stream that never got a frame
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = 64
        container.start_encoding()
    return {
        "notes.mp4": (folder / "notes.mp4", "not a video (FFmpeg: Invalid data found when processing input)"),
        "empty.mp4": (folder / "empty.mp4", "an empty file (0 bytes)"),
        "cut.mp4": (folder / "cut.mp4", "a truncated MP4"),
        "codec.mp4": (folder / "codec.mp4", "unsupported video codec"),
        "zero.mp4": (folder / "zero.mp4", "no video stream"),
    }


def test_bad_videos_are_one_line_each_and_exit_2_when_nothing_is_read(tmp_path: Path, capsys) -> None:
    for name, (path, words) in _bad_files(tmp_path).items():
        with pytest.raises(VideoError) as caught:
            VideoReader(path)
        message = str(caught.value)
        assert message.startswith(str(path)) and words in message and "\n" not in message, message
        code, out, err = _cli(["predict", str(path)], tmp_path, capsys)
        lines = [line for line in err.splitlines() if line.startswith("error:")]
        assert code == 2 and len(lines) == 1 and name in lines[0] and words in lines[0], err
        assert not list(tmp_path.glob(f"{path.stem}.*.csv")), "nothing is written for an unreadable video"


def test_truncated_video_keeps_the_frames_before_the_cut(tmp_path: Path, capsys) -> None:
    clip = videos.write_clip(tmp_path / "whole.mp4", videos.noise_frames(40), fps=10, faststart=True)
    data = clip.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with VideoReader(cut) as reader:
        frames = list(reader)
    assert 5 < len(frames) < 40 and "truncated" in reader.describe_problem()
    code, out, err = _cli(["predict", str(cut), "--detect_every", "1"], tmp_path, capsys)
    assert code == 0, err
    assert "note: " in err and "cut.mp4: truncated or damaged" in err
    rows = _rows(tmp_path / "cut.frames.csv")
    assert [int(r["frame"]) for r in rows] == list(range(len(frames)))
    assert {r["status"] for r in rows} == {"no_face"}  # noise: no face in any frame
    summary = json.loads((tmp_path / "cut.tracks.json").read_text())
    assert summary["complete"] is False and "truncated" in summary["problem"] and summary["tracks"] == []
    assert "no face found" in out


# --- tracking and smoothing -------------------------------------------------------------------------


def test_tracker_keeps_ids_through_crossing_paths_and_a_short_gap() -> None:
    tracker = FaceTracker(rate=10, max_lost=0.5)
    for step in range(40):
        right = (20 + 8 * step, 50, 80, 100)  # moving right
        left = (340 - 8 * step, 56, 84, 104)  # moving left: they pass each other at steps 17-23
        boxes, want = [right, left], [1, 2]
        if 30 <= step < 33:  # the second unseen for 0.3 s
            boxes, want = [right], [1]
        assert tracker.update(boxes, [0.99] * len(boxes)) == want, step

    def a(step: int) -> tuple[int, int, int, int]:
        return (20 + 8 * step, 50, 80, 100)

    for step in range(40, 48):  # b unseen for longer than max_lost: it comes back as a new track
        assert tracker.update([a(step)], [0.99]) == [1]
    assert tracker.update([a(48), (20, 60, 90, 110)], [0.99, 0.99]) == [1, 3]
    # a less sure face continues a track, and starts none
    assert tracker.update([a(49), (22, 60, 90, 110)], [0.99, 0.3]) == [1, 3]
    assert tracker.update([a(50), (200, 300, 90, 110)], [0.99, 0.3]) == [1, None]


def test_moving_average_is_in_seconds_and_zero_is_off() -> None:
    ema = Ema(tau=0.5)
    assert ema(0.0, np.array([0.0])) == pytest.approx([0.0])
    assert ema(0.5, np.array([1.0])) == pytest.approx([1 - np.exp(-1)])  # one time constant
    smoother = TrackSmoother(tau=0)
    assert smoother(1, 0.0, np.array([0.2])) == pytest.approx([0.2])
    assert smoother(1, 0.1, np.array([0.9])) == pytest.approx([0.9])
    sampled, dense = TrackSmoother(tau=0.3), TrackSmoother(tau=0.3)  # 5 fps and 25 fps see the same curve
    for step in range(26):
        value = dense(1, step / 25, np.array([1.0 if step else 0.0]))
        if step % 5 == 0:
            coarse = sampled(1, step / 25, np.array([1.0 if step else 0.0]))
    assert coarse == pytest.approx(value, abs=0.06)


@needs_mtcnn
def test_two_faces_keep_their_ids_and_smoothing_off_gives_the_photos_answers(predictor, two_faces) -> None:
    results = list(predictor.predict_video(two_faces, smoothing=0, detect_every=1))
    assert len(results) == 8 and all(r.detected for r in results)
    with VideoReader(two_faces) as reader:
        for frame, result in zip(reader, results):
            assert [face.track for face in result.faces] == [1, 2]
            photo = predictor.predict(frame.rgb)
            assert [face.box for face in photo] == [face.box for face in result.faces]
            for face, tracked in zip(photo, result.faces):
                assert tracked.probabilities["Smiling"] == pytest.approx(
                    face.probabilities["Smiling"], abs=1e-5
                )
                assert tracked.smoothed == tracked.probabilities
                assert tracked.predicted == face.predicted
    # the default: a full detection every 5th frame, the faces found again in between, the same ids
    results = list(predictor.predict_video(two_faces))
    assert [[f.track for f in r.faces] for r in results] == [[1, 2]] * 8
    assert [r.detected for r in results] == [i % 5 == 0 for i in range(8)]
    assert {f.found for r in results for f in r.faces} == {"detected", "refound"}
    smoothed = [r.faces[0].smoothed["Smiling"] for r in results]
    raw = [r.faces[0].probabilities["Smiling"] for r in results]
    assert np.std(np.diff(smoothed)) <= np.std(np.diff(raw))


@needs_mtcnn
def test_numpy_frames_are_predicted_as_they_come(predictor) -> None:
    frames = videos.moving_faces(face_photos.faces()[:1], count=24)
    pulled = []

    def camera():
        for index, frame in enumerate(frames):
            pulled.append(index)
            yield frame[:, :, ::-1]  # as OpenCV gives them

    iterator = predictor.predict_video(camera(), channels="BGR", rate=10, detect_every=3)
    first = next(iterator)
    assert first.index == 0 and first.time == 0.0 and len(first.faces) == 1
    assert len(pulled) <= 17, "the first result comes after one batch, not after the whole stream"
    rest = list(iterator)
    assert [r.index for r in rest] == list(range(1, 24)) and rest[-1].time == pytest.approx(2.3)
    assert {f.track for r in rest for f in r.faces} == {1}


@needs_mtcnn
def test_a_newcomer_is_found_at_the_next_full_detection(predictor) -> None:
    """Between full detections only the tracked faces are looked for: a face that walks in is found
    by the next full detection (every 3rd frame here), and kept from then on."""
    with_face = videos.moving_faces(face_photos.faces()[:1], count=6, step=0)
    empty = [np.full_like(with_face[0], 196)] * 4
    results = list(predictor.predict_video(empty + with_face, rate=10, detect_every=3))
    assert [len(r.faces) for r in results] == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert [r.detected for r in results] == [True, False, False, True, False, False, True, False, False, True]
    assert {f.track for r in results for f in r.faces} == {1}


# --- the command's outputs --------------------------------------------------------------------------


@needs_mtcnn
def test_predict_writes_frames_tracks_timeline_and_an_annotated_video(two_faces, tmp_path, capsys) -> None:
    import av

    out = tmp_path / "out"
    code, stdout, err = _cli(
        ["predict", str(two_faces), "--out", str(out), "--annotate_dir", str(tmp_path / "marked")],
        tmp_path,
        capsys,
    )
    assert code == 0, err
    rows = _rows(out / "two.frames.csv")
    assert len(rows) == 16 and {r["track"] for r in rows} == {"1", "2"}
    first = rows[0]
    assert list(first)[:11] == [
        "video",
        "frame",
        "time",
        "track",
        "box_x",
        "box_y",
        "box_w",
        "box_h",
        "score",
        "found",
        "status",
    ]
    assert list(first)[11:] == ["Smiling_raw", "Smiling_smoothed", "Smiling"]
    for row in rows:
        assert row["Smiling"] == str(int(float(row["Smiling_smoothed"]) > 0.5))
    summary = json.loads((out / "two.tracks.json").read_text())
    assert [t["track"] for t in summary["tracks"]] == [1, 2] and summary["complete"] is True
    assert all(
        t["frames"] == 8 and t["first_seen"] == 0.0 and t["last_seen"] == 0.7 for t in summary["tracks"]
    )
    tracks = _rows(out / "two.tracks.csv")
    assert [t["track"] for t in tracks] == ["1", "2"] and "share_Smiling" in tracks[0]
    assert (out / "two.timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "2 track(s)" in stdout
    with av.open(str(tmp_path / "marked" / "two.annotated.mp4")) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and len(list(container.decode(stream))) == 8
    # a second run keeps the first one's outputs and writes beside them
    code, _, _ = _cli(["predict", str(two_faces), "--out", str(out), "--every", "4"], tmp_path, capsys)
    assert (
        code == 0 and len(_rows(out / "two-2.frames.csv")) == 4 and len(_rows(out / "two.frames.csv")) == 16
    )


@needs_mtcnn
def test_a_folder_holds_photos_and_videos(two_faces, tmp_path, capsys) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "clip.mp4").write_bytes(two_faces.read_bytes())
    (folder / "group.jpg").write_bytes(face_photos.jpeg(face_photos.group(2)))
    code, stdout, err = _cli(["predict", str(folder), "--every", "3"], tmp_path, capsys)
    assert code == 0, err
    assert {r["image"].rsplit("/", 1)[-1] for r in _rows(tmp_path / "predictions.csv")} == {"group.jpg"}
    assert len(_rows(tmp_path / "clip.frames.csv")) == 6  # frames 0, 3, 6, two faces each


def test_a_stop_part_way_leaves_a_valid_csv_and_summary_of_the_frames_done(
    tmp_path, capsys, monkeypatch
) -> None:
    """A KeyboardInterrupt while the third batch is predicted: exit 130, the two batches before it
    written whole; the summary and timeline cover them (the real Ctrl-C: the slow test below)."""
    from smile.video.pipeline import VideoStream

    clip = videos.write_clip(tmp_path / "long.mp4", videos.sweep_frames(60, size=(160, 120)), fps=30)
    flush, calls = VideoStream.flush, []

    def interrupted(self):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return flush(self)

    monkeypatch.setattr(VideoStream, "flush", interrupted)
    code, _, err = _cli(["predict", str(clip)], tmp_path, capsys)
    assert code == 130 and "Interrupted after 32 frames" in err, err
    rows = _rows(tmp_path / "long.frames.csv")
    assert [int(r["frame"]) for r in rows] == list(range(32))
    assert all(None not in r and r["status"] == "no_face" for r in rows)
    summary = json.loads((tmp_path / "long.tracks.json").read_text())
    assert summary["frames"] == 32 and summary["complete"] is False and summary["problem"] == "interrupted"
    assert (tmp_path / "long.timeline.png").is_file()


@pytest.mark.slow
def test_an_interrupted_run_leaves_a_valid_csv_of_the_frames_done(tmp_path: Path) -> None:
    """Ctrl-C (SIGINT) in the middle of a clip: exit 130, every row written whole, the frames in order."""
    clip = videos.write_clip(tmp_path / "long.mp4", videos.sweep_frames(900), fps=30)
    process = subprocess.Popen(
        [sys.executable, "-m", "smile", "predict", str(clip), "--detect_every", "1"],
        cwd=tmp_path,
        env=smile_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    table = tmp_path / "long.frames.csv"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not table.exists() or len(table.read_bytes().splitlines()) < 40):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Interrupted after" in err
    rows = _rows(table)
    assert 39 <= len(rows) < 900
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
    assert all(None not in r and all(v is not None for v in r.values()) for r in rows)
    assert json.loads((tmp_path / "long.tracks.json").read_text())["frames"] == len(rows)
