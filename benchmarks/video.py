"""Videos: speed, memory, same answers, flicker and tracks, on the real clips of ../shared/videos.

    python benchmarks/video.py                      # everything; the table, and benchmarks/results/video.json
    python benchmarks/video.py --only flicker,tracks

Sections (``--only``):

- ``decode``: frames a second decoded to RGB by PyAV and by OpenCV's reader (d6, d13).
- ``detectors``: milliseconds a frame of a full detection (MTCNN, Haar; at the aligner's 960-pixel
  limit and at 640 for d13) and of MTCNN's second look at a tracked face (R-Net + O-Net).
- ``speed``: frames a second of ``predict_video`` for d6 (480x480) and d13 (720x1280), every frame
  predicted, with a full detection every K frames (K = 1, 2, 3, 5, 10), and how far the probabilities of
  K > 1 are from K = 1's; beside them the peers' way, a loop of ``smile.load().predict`` on each frame
  (decoding included in both).
- ``memory``: peak RSS of ``smile predict`` on one clip and on the same clip concatenated 10 times
  (made under /tmp by remuxing, no re-encoding), each in a fresh process.
- ``same``: with smoothing off and a detection on every frame, each frame's probabilities against
  ``smile.load().predict`` of the frame extracted as a PNG; and the default settings' distance.
- ``flicker``: decision flips a second on every real clip, raw and under each filter (the exponential
  moving average at several time constants, the 1-euro filter), the lag of their decisions behind a
  zero-phase reference, and the frames whose decision smoothing changes.
- ``tracks``: two real clips side by side (two people): tracks found, frames with both faces, id swaps.

Wall-clock rates depend on the machine's load: the 1-minute load average is recorded before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, load_average, project_env

VIDEOS = ROOT.parent / "shared" / "videos"
RESULTS = ROOT / "benchmarks" / "results" / "video.json"
SECTIONS = ("decode", "detectors", "speed", "memory", "same", "flicker", "tracks")
SPEED_CLIPS = ("d6.mp4", "d13.mp4")
DETECT_EVERY = (1, 2, 3, 5, 10)
#: The filters compared: (name, kind, time constant in seconds).
FILTERS = (
    ("off", "ema", 0.0),
    ("ema 0.1 s", "ema", 0.1),
    ("ema 0.15 s", "ema", 0.15),
    ("ema 0.2 s", "ema", 0.2),
    ("ema 0.3 s", "ema", 0.3),
    ("ema 0.5 s", "ema", 0.5),
    ("ema 1.0 s", "ema", 1.0),
    ("one-euro 0.3 s", "one_euro", 0.3),
    ("one-euro 0.5 s", "one_euro", 0.5),
    ("one-euro 1.0 s", "one_euro", 1.0),
)


def clip(name: str) -> Path:
    path = VIDEOS / name
    if not path.is_file():
        sys.exit(f"{path} is missing: this benchmark reads the real clips of ../shared/videos")
    return path


def real_clips() -> list[Path]:
    return sorted(VIDEOS.glob("*.mp4"), key=lambda p: int(p.stem[1:]) if p.stem[1:].isdigit() else 0)


# --- decode -----------------------------------------------------------------------------------------


def decode_pyav(path: Path) -> float:
    from smile.video.decode import VideoReader

    start = time.perf_counter()
    with VideoReader(path) as reader:
        count = sum(1 for _ in reader)
    return count / (time.perf_counter() - start)


def decode_opencv(path: Path) -> float:
    import cv2

    start = time.perf_counter()
    capture, count = cv2.VideoCapture(str(path)), 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
        count += 1
    capture.release()
    return count / (time.perf_counter() - start)


def section_decode() -> dict[str, Any]:
    out = {}
    for name in SPEED_CLIPS:
        path = clip(name)
        out[name] = {
            "pyav_fps": round(max(decode_pyav(path) for _ in range(2)), 1),
            "opencv_fps": round(max(decode_opencv(path) for _ in range(2)), 1),
        }
    return out


# --- detectors --------------------------------------------------------------------------------------


def first_frames(path: Path, count: int) -> list[np.ndarray]:
    from smile.video.decode import VideoReader

    frames = []
    with VideoReader(path) as reader:
        for frame in reader:
            frames.append(frame.rgb)
            if len(frames) == count:
                break
    return frames


def section_detectors() -> dict[str, Any]:
    from smile.faces.aligner import FaceAligner

    out: dict[str, Any] = {}
    for name in SPEED_CLIPS:
        frames = first_frames(clip(name), 60)
        row: dict[str, Any] = {}
        for detector, max_side in (("mtcnn", 960), ("mtcnn", 640), ("haar", 960)):
            if max_side != 960 and max(frames[0].shape[:2]) <= max_side:
                continue
            aligner = FaceAligner(detector, max_side=max_side)
            aligner.detect(frames[0])
            start = time.perf_counter()
            found = sum(len(aligner.detect(f)) for f in frames)
            row[f"{detector}@{max_side}"] = {
                "ms": round(1000 * (time.perf_counter() - start) / len(frames), 2),
                "faces_per_frame": round(found / len(frames), 2),
            }
        aligner = FaceAligner("mtcnn")
        boxes = np.array([aligner.detect(frames[0])[0].box])
        start = time.perf_counter()
        for frame in frames:
            found = aligner.refine(frame, boxes)
            boxes = np.array([found[0].box]) if found else boxes
        row["mtcnn second look"] = {"ms": round(1000 * (time.perf_counter() - start) / len(frames), 2)}
        out[name] = row
    return out


# --- speed ------------------------------------------------------------------------------------------


def run_video(predictor, path: Path, **kwargs) -> tuple[list, float]:
    start = time.perf_counter()
    results = list(predictor.predict_video(path, **kwargs))
    return results, time.perf_counter() - start


def faces_by_frame(results) -> dict[int, list]:
    return {r.index: sorted(r.faces, key=lambda f: f.box[0]) for r in results}


def distance(results, reference) -> dict[str, float]:
    """How far the raw probabilities of ``results`` are from ``reference``'s (the same frames), face by
    face (matched left to right), and how often their decisions (at 0.5) differ."""
    ours, theirs = faces_by_frame(results), faces_by_frame(reference)
    diffs, disagree, missing = [], 0, 0
    for index, faces in theirs.items():
        mine = ours.get(index, [])
        if len(mine) != len(faces):
            missing += 1
            continue
        for a, b in zip(mine, faces):
            p, q = a.probabilities["Smiling"], b.probabilities["Smiling"]
            diffs.append(abs(p - q))
            disagree += (p > 0.5) != (q > 0.5)
    diffs = np.array(diffs) if diffs else np.zeros(1)
    return {
        "mean_abs": round(float(diffs.mean()), 5),
        "p95_abs": round(float(np.percentile(diffs, 95)), 5),
        "max_abs": round(float(diffs.max()), 5),
        "decisions_differ": int(disagree),
        "frames_with_other_faces": int(missing),
    }


def predict_loop(predictor, path: Path) -> tuple[float, int]:
    """The peers' way: decode, then ``predict`` each frame as a photo. Frames a second and frames."""
    from smile.video.decode import VideoReader

    start, count = time.perf_counter(), 0
    with VideoReader(path) as reader:
        for frame in reader:
            predictor.predict(frame.rgb)
            count += 1
    return count / (time.perf_counter() - start), count


def section_speed(predictor) -> dict[str, Any]:
    from smile.video import DEFAULT_DETECT_EVERY
    from smile.video.decode import VideoReader

    out: dict[str, Any] = {}
    for name in SPEED_CLIPS:
        path = clip(name)
        with VideoReader(path) as reader:
            info = reader.info
        row: dict[str, Any] = {
            "size": f"{info.width}x{info.height}",
            "frames": info.frames,
            "clip_fps": info.fps,
        }
        list(predictor.predict_video(path, every=50))  # warm up: detector, network
        reference = None
        for k in DETECT_EVERY:
            results, seconds = run_video(predictor, path, detect_every=k)
            entry = {
                "fps": round(len(results) / seconds, 1),
                "frames": len(results),
                "seconds": round(seconds, 1),
                "full_detections": sum(r.detected for r in results),
            }
            if k == 1:
                reference = results
            else:
                entry["vs_detect_every_1"] = distance(results, reference)
            row[f"detect_every_{k}"] = entry
            print(f"  {name} detect_every={k}: {entry['fps']} frames/s", file=sys.stderr, flush=True)
        fps, count = predict_loop(predictor, path)
        row["predict_loop"] = {"fps": round(fps, 1), "frames": count}
        row["default_detect_every"] = DEFAULT_DETECT_EVERY
        row["speedup_vs_loop"] = round(row[f"detect_every_{DEFAULT_DETECT_EVERY}"]["fps"] / fps, 2)
        row["real_time"] = row[f"detect_every_{DEFAULT_DETECT_EVERY}"]["fps"] >= (info.fps or 30)
        print(f"  {name} predict loop: {fps:.1f} frames/s", file=sys.stderr, flush=True)
        out[name] = row
    return out


# --- memory -----------------------------------------------------------------------------------------


def concatenate(path: Path, times: int, out: Path) -> Path:
    """``path`` ``times`` over, one after the other, by remuxing its packets (no re-encoding)."""
    import av

    with av.open(str(path)) as source:
        stream = source.streams.video[0]
        packets = [p for p in source.demux(stream) if p.size]
        step = packets[1].pts - packets[0].pts if len(packets) > 1 else 1
        span = max(p.pts for p in packets) - min(p.pts for p in packets) + step
        with av.open(str(out), "w") as target:
            copy = target.add_stream_from_template(stream)
            for round_ in range(times):
                for packet in packets:
                    packet.stream = copy
                    shift = round_ * span
                    packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                    target.mux(packet)
                    packet.pts, packet.dts = packet.pts - shift, packet.dts - shift
    return out


PEAK = """
import resource, sys
from smile.cli import main
code = main(["predict", sys.argv[1], "--out", sys.argv[2]])
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "CODE", code)
"""


def peak_rss(path: Path, out: Path) -> tuple[float, float]:
    """Peak RSS (MB) of ``smile predict PATH`` in a fresh process, and its wall time."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", PEAK, str(path), str(out)],
        env=project_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in done.stdout.splitlines() if line.startswith("PEAK_KB"))
    return int(line.split()[1]) / 1024, time.perf_counter() - start


def section_memory(name: str) -> dict[str, Any]:
    from smile.video.decode import VideoReader

    path = clip(name)
    with tempfile.TemporaryDirectory(prefix="smile-video-memory-") as folder:
        long = concatenate(path, 10, Path(folder) / f"{path.stem}x10.mp4")
        with VideoReader(long) as reader:
            frames = reader.info.frames
        one, one_s = peak_rss(path, Path(folder) / "one")
        ten, ten_s = peak_rss(long, Path(folder) / "ten")
    return {
        "clip": name,
        "frames_one": first_count(path),
        "frames_ten": frames,
        "peak_rss_mb_one": round(one, 1),
        "peak_rss_mb_ten": round(ten, 1),
        "difference_mb": round(ten - one, 1),
        "seconds_one": round(one_s, 1),
        "seconds_ten": round(ten_s, 1),
        "flat_within_50mb": abs(ten - one) <= 50,
    }


def first_count(path: Path) -> int:
    from smile.video.decode import VideoReader

    with VideoReader(path) as reader:
        return reader.info.frames or 0


# --- same answers -----------------------------------------------------------------------------------


def section_same(predictor, names: tuple[str, ...] = ("d0.mp4", "d12.mp4")) -> dict[str, Any]:
    from smile.video.decode import VideoReader

    out = {}
    for name in names:
        path = clip(name)
        video = list(predictor.predict_video(path, smoothing=0, detect_every=1))
        worst, faces, mismatched = 0.0, 0, 0
        with tempfile.TemporaryDirectory(prefix="smile-frames-") as folder, VideoReader(path) as reader:
            for frame, result in zip(reader, video):
                png = Path(folder) / f"{frame.index:05d}.png"
                from PIL import Image

                Image.fromarray(frame.rgb).save(png)  # the frame extracted, losslessly
                photo = [f for f in predictor.predict(png) if f.method != "whole_image"]
                if [f.box for f in photo] != [f.box for f in result.faces]:
                    mismatched += 1
                    continue
                for a, b in zip(photo, result.faces):
                    worst = max(worst, abs(a.probabilities["Smiling"] - b.probabilities["Smiling"]))
                    faces += 1
                png.unlink()
        default = list(predictor.predict_video(path, smoothing=0))
        out[name] = {
            "frames": len(video),
            "faces_compared": faces,
            "frames_with_other_faces": mismatched,
            "max_abs_difference": float(f"{worst:.3g}"),
            "equal_to_1e-5": worst <= 1e-5 and mismatched == 0,
            "default_detect_every_vs_photos": distance(default, video),
        }
    return out


# --- flicker ----------------------------------------------------------------------------------------


def track_series(results) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Each track's (times, raw Smiling probabilities)."""
    series: dict[int, tuple[list, list]] = {}
    for result in results:
        for face in result.faces:
            times, values = series.setdefault(face.track, ([], []))
            times.append(result.time)
            values.append(face.probabilities["Smiling"])
    return {track: (np.array(t), np.array(v)) for track, (t, v) in series.items()}


def filtered(times: np.ndarray, values: np.ndarray, kind: str, tau: float) -> np.ndarray:
    from smile.video.smoothing import TrackSmoother

    smoother = TrackSmoother(tau, kind)
    return np.array([smoother(1, t, np.array([v]))[0] for t, v in zip(times, values)])


def zero_phase(times: np.ndarray, values: np.ndarray, tau: float = 0.2) -> np.ndarray:
    """The reference a causal filter is judged against: the moving average run forwards and then
    backwards (no lag), at ``tau`` seconds."""
    forward = filtered(times, values, "ema", tau)
    backward = filtered(times[-1] - times[::-1], forward[::-1], "ema", tau)[::-1]
    return backward


def flips(decisions: np.ndarray) -> np.ndarray:
    """Indices where the decision changes."""
    return np.flatnonzero(decisions[1:] != decisions[:-1]) + 1


def lag(times: np.ndarray, decisions: np.ndarray, reference: np.ndarray, window: float = 1.5) -> list[float]:
    """For each flip of the reference, the delay of the first later flip of ``decisions`` the same way."""
    delays = []
    ours = flips(decisions)
    for index in flips(reference):
        later = [
            i
            for i in ours
            if i >= index and decisions[i] == reference[index] and times[i] - times[index] <= window
        ]
        if later:
            delays.append(float(times[later[0]] - times[index]))
    return delays


def section_flicker(predictor) -> dict[str, Any]:
    from smile.video.decode import VideoReader

    per_clip, totals = {}, {name: {"flips": 0, "delays": [], "changed": 0} for name, _, _ in FILTERS}
    duration_total, face_frames = 0.0, 0
    for path in real_clips():
        with VideoReader(path) as reader:
            info = reader.info
        duration = (info.frames or 0) / (info.fps or 30)
        results = list(predictor.predict_video(path, smoothing=0))
        duration_total += duration
        row = {"seconds": round(duration, 2), "tracks": len({f.track for r in results for f in r.faces})}
        for name, kind, tau in FILTERS:
            count, delays, changed = 0, [], 0
            for times, values in track_series(results).values():
                decided = filtered(times, values, kind, tau) > 0.5
                reference = zero_phase(times, values) > 0.5
                count += len(flips(decided))
                delays += lag(times, decided, reference)
                changed += int(((values > 0.5) != decided).sum())
            totals[name]["flips"] += count
            totals[name]["delays"] += delays
            totals[name]["changed"] += changed
            row[name] = {"flips_per_s": round(count / duration, 3), "frames_changed": changed}
        face_frames += sum(len(r.faces) for r in results)
        per_clip[path.name] = row
        print(
            f"  {path.name}: raw {row['off']['flips_per_s']} flips/s, ema 0.3 s {row['ema 0.3 s']['flips_per_s']}",
            file=sys.stderr,
            flush=True,
        )
    summary = {
        name: {
            "flips_per_s": round(t["flips"] / duration_total, 3),
            "mean_lag_s": round(float(np.mean(t["delays"])), 3) if t["delays"] else None,
            "frames_changed": t["changed"],
            "share_changed": round(t["changed"] / max(face_frames, 1), 4),
        }
        for name, t in totals.items()
    }
    return {
        "clips": per_clip,
        "all": summary,
        "seconds": round(duration_total, 1),
        "face_frames": face_frames,
    }


# --- tracks -----------------------------------------------------------------------------------------


def side_by_side(left: Path, right: Path, out: Path) -> Path:
    """The two clips side by side, as long as the shorter, at the left one's frame rate (H.264)."""
    import av

    from smile.video.decode import VideoReader

    with VideoReader(left) as a, VideoReader(right) as b, av.open(str(out), "w") as target:
        stream = target.add_stream("libx264", rate=Fraction(a.info.fps or 30).limit_denominator(1001))
        height = min(a.info.height, b.info.height)
        stream.width, stream.height, stream.pix_fmt = a.info.width + b.info.width, height, "yuv420p"
        stream.options = {"crf": "18", "preset": "veryfast"}
        for fa, fb in zip(a, b):
            joined = np.hstack([fa.rgb[:height], fb.rgb[:height]])
            for packet in stream.encode(av.VideoFrame.from_ndarray(joined, format="rgb24")):
                target.mux(packet)
        for packet in stream.encode():
            target.mux(packet)
    return out


def section_tracks(predictor, left: str = "d10.mp4", right: str = "d14.mp4") -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="smile-two-") as folder:
        joined = side_by_side(clip(left), clip(right), Path(folder) / "two.mp4")
        from smile.video.decode import VideoReader

        with VideoReader(joined) as reader:
            width = reader.info.width
        results = list(predictor.predict_video(joined))
    middle = width / 2
    sides: dict[str, list[int]] = {"left": [], "right": []}
    both = 0
    for result in results:
        present = set()
        for face in result.faces:
            side = "left" if face.box[0] + face.box[2] / 2 < middle else "right"
            sides[side].append(face.track)
            present.add(side)
        both += present == {"left", "right"}
    ids = {side: sorted(set(v)) for side, v in sides.items()}
    swaps = sum(
        int(np.sum(np.array(values) != max(set(values), key=values.count)))
        for values in sides.values()
        if values
    )
    return {
        "clip": f"{left} | {right}",
        "frames": len(results),
        "frames_with_both": both,
        "tracks": len({f.track for r in results for f in r.faces}),
        "ids_by_side": ids,
        "frames_with_another_id": swaps,
    }


# --- the table --------------------------------------------------------------------------------------


def table(results: dict[str, Any]) -> Iterator[str]:
    if "decode" in results:
        yield "decode to RGB, frames/s:  " + "; ".join(
            f"{n}: PyAV {r['pyav_fps']}, OpenCV {r['opencv_fps']}" for n, r in results["decode"].items()
        )
    if "detectors" in results:
        for name, row in results["detectors"].items():
            yield f"detection, ms a frame, {name}:  " + "; ".join(f"{k} {v['ms']}" for k, v in row.items())
    if "speed" in results:
        for name, row in results["speed"].items():
            cells = [f"K={k} {row[f'detect_every_{k}']['fps']}" for k in DETECT_EVERY]
            yield (
                f"{name} ({row['size']}, {row['clip_fps']:.3g} fps): frames/s "
                + ", ".join(cells)
                + f"; predict() loop {row['predict_loop']['fps']} (default x{row['speedup_vs_loop']})"
            )
            for k in DETECT_EVERY[1:]:
                d = row[f"detect_every_{k}"]["vs_detect_every_1"]
                yield f"    K={k} vs K=1: |dP| mean {d['mean_abs']}, p95 {d['p95_abs']}, decisions differ {d['decisions_differ']}"
    if "memory" in results:
        m = results["memory"]
        yield (
            f"peak RSS, {m['clip']}: one ({m['frames_one']} frames) {m['peak_rss_mb_one']} MB, ten times "
            f"({m['frames_ten']} frames) {m['peak_rss_mb_ten']} MB: {m['difference_mb']:+} MB"
        )
    if "same" in results:
        for name, row in results["same"].items():
            yield (
                f"same answers, {name}: {row['faces_compared']} faces, max |dP| {row['max_abs_difference']} "
                f"(equal to 1e-5: {row['equal_to_1e-5']}); default K vs photos mean "
                f"{row['default_detect_every_vs_photos']['mean_abs']}"
            )
    if "flicker" in results:
        f = results["flicker"]
        yield f"flicker over {f['seconds']} s of the real clips ({f['face_frames']} face-frames):"
        for name, row in f["all"].items():
            yield (
                f"    {name:<15} {row['flips_per_s']:.3f} flips/s, lag {row['mean_lag_s']} s, "
                f"{row['frames_changed']} frames changed ({row['share_changed']:.1%})"
            )
    if "tracks" in results:
        t = results["tracks"]
        yield (
            f"two people ({t['clip']}, {t['frames']} frames): {t['tracks']} tracks, both in "
            f"{t['frames_with_both']} frames, ids by side {t['ids_by_side']}, {t['frames_with_another_id']} frames with another id"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help=f"comma-separated sections of {', '.join(SECTIONS)} (default: all)")
    parser.add_argument(
        "--memory_clip", default="d6.mp4", help="the clip concatenated 10 times (default d6.mp4)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="the JSON (merged into an existing one)")
    args = parser.parse_args(argv)
    chosen = args.only.split(",") if args.only else list(SECTIONS)
    import smile

    predictor = smile.load()
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.is_file() else {}
    for section in chosen:
        print(f"{section}...", file=sys.stderr, flush=True)
        started, load_before = time.time(), load_average()
        if section == "decode":
            results["decode"] = section_decode()
        elif section == "detectors":
            results["detectors"] = section_detectors()
        elif section == "speed":
            results["speed"] = section_speed(predictor)
        elif section == "memory":
            results["memory"] = section_memory(args.memory_clip)
        elif section == "same":
            results["same"] = section_same(predictor)
        elif section == "flicker":
            results["flicker"] = section_flicker(predictor)
        elif section == "tracks":
            results["tracks"] = section_tracks(predictor)
        else:
            parser.error(f"unknown section {section!r}: choose from {', '.join(SECTIONS)}")
        runs = results.setdefault("runs", {})
        runs[section] = {
            "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)),
            "load_before": load_before,
            "load_after": load_average(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "command": "python benchmarks/video.py --only " + section,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    for line in table({k: v for k, v in results.items() if k in chosen}):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
