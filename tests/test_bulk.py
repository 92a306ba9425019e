"""Many photos through Lightning's predict loop (:mod:`smile.photos.bulk`): the dataset and its collate in
a worker, the shard writer and the merge, resuming after a kill, refusing a bad previous output, Parquet
with the CSV's columns, two processes under torchrun, and the few-photos path that starts no Lightning."""

from __future__ import annotations

import csv
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import photos as face_photos
from helpers.cli import smile_env
from helpers.photos import needs_mtcnn
from PIL import Image

import smile
from smile.faces.options import FaceOptions
from smile.photos import bulk
from smile.photos.pipeline import PhotoPipeline
from smile.photos.predictions import csv_header


@pytest.fixture
def aligned(sample_or_synthetic: Path, tmp_path: Path) -> list[Path]:
    """Nine aligned face crops (no detector needed) and a file that is not an image, in one folder."""
    folder = tmp_path / "aligned"
    folder.mkdir()
    for source in sorted((sample_or_synthetic / "img_align_celeba").glob("*.jpg"))[:9]:
        shutil.copy(source, folder / source.name)
    (folder / "notes.txt").write_text("not a photo")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def model(smiling_checkpoint: Path) -> smile.Predictor:
    return smile.load(smiling_checkpoint).with_options(aligned=True)


def in_process(model: smile.Predictor, files: list[Path], out: Path) -> bytes:
    """What the in-process path writes for ``files``."""
    from smile.photos.predictions import write_csv

    rows = model.predict_files(files)
    write_csv(rows, model.attributes, model.thresholds.tolist(), out)
    return out.read_bytes()


def engine(model: smile.Predictor, files: list[Path], out: Path, **options) -> bulk.Counts | None:
    return bulk.predict_many(model, files, out, batch_size=4, num_workers=0, progress=False, **options)


# --- the dataset and its collate --------------------------------------------------------------------


@needs_mtcnn
def test_dataset_reads_detects_and_aligns_in_a_worker_and_collates_any_number_of_faces(
    tmp_path: Path,
) -> None:
    from torch.utils.data import DataLoader

    face_photos.group(3).save(tmp_path / "group.png")
    face_photos.faces()[0].save(tmp_path / "one.jpg")
    face_photos.empty().save(tmp_path / "none.jpg")
    (tmp_path / "broken.jpg").write_bytes((tmp_path / "one.jpg").read_bytes()[:300])
    Image.new("RGB", (1000, 1000)).save(tmp_path / "huge.png")
    files = [tmp_path / name for name in ("group.png", "one.jpg", "none.jpg", "broken.jpg", "huge.png")]
    pipeline = PhotoPipeline(64, options=FaceOptions(max_pixels=500_000), uint8=True)
    pipeline.aligner()  # a detector in this process: neither pickled nor used by a forked worker
    dataset = bulk.PhotoFiles(files, pipeline, length=6)
    assert "_local" not in pickle.loads(pickle.dumps(dataset)).pipeline.__dict__["_local"].__dict__
    batches = list(DataLoader(dataset, batch_size=4, num_workers=1, collate_fn=bulk.collate_photos))
    assert [len(batch["photos"]) for batch in batches] == [4, 2]  # the last item pads: no file, no row
    photos = [rows for batch in batches for rows in batch["photos"]]
    assert [[row.status for row in rows] for rows in photos] == [
        ["ok", "ok", "ok"],
        ["ok"],
        ["whole_image"],
        [photos[3][0].status],
        [photos[4][0].status],
        [],
    ]
    assert photos[3][0].status.startswith("unreadable: ") and "damaged" in photos[3][0].status
    assert photos[4][0].status.startswith("unreadable: ") and "500,000 are accepted" in photos[4][0].status
    assert [row.face for row in photos[0]] == [0, 1, 2] and photos[0][0].box[0] < photos[0][1].box[0]
    crops = [batch["crops"] for batch in batches]
    assert [tuple(c.shape) for c in crops] == [(5, 3, 64, 64), (0, 3, 64, 64)] and crops[
        0
    ].dtype.is_floating_point is False
    expected = pipeline.tensor([face.aligned for face in pipeline.faces(pipeline.read(files[0]))])
    assert (crops[0][:3] == expected).all()


def test_lightnings_predict_sampler_splits_the_photos_without_repeats_and_pads_to_the_processes() -> None:
    """What several processes get: Lightning's predict sampler (as its data connector makes it for
    ``Trainer.predict``) splits the dataset; with fewer photos than processes, the padding gives each
    process an item that is no photo."""
    from pytorch_lightning.overrides.distributed import UnrepeatedDistributedSamplerWrapper
    from torch.utils.data import SequentialSampler

    for photos, processes in ((10, 2), (7, 3), (1, 2), (0, 2)):
        dataset = bulk.PhotoFiles([f"{i}.jpg" for i in range(photos)], PhotoPipeline(64), length=processes)
        shares = [
            list(
                UnrepeatedDistributedSamplerWrapper(
                    SequentialSampler(dataset), num_replicas=processes, rank=rank, shuffle=False
                )
            )
            for rank in range(processes)
        ]
        assert all(shares) and sorted(i for share in shares for i in share) == list(range(len(dataset)))
        assert len(dataset) == max(photos, processes)


def test_a_detector_failure_on_one_photo_is_its_row(tmp_path: Path) -> None:
    def detector(rgb: np.ndarray) -> list:
        if rgb.shape[1] == 321:
            raise RuntimeError("the detector broke")
        return []

    for width in (320, 321):
        Image.new("RGB", (width, 200), (90, 90, 90)).save(tmp_path / f"{width}.png")
    pipeline = PhotoPipeline(64, options=FaceOptions(detector=detector), uint8=True)  # type: ignore[arg-type]
    items = [bulk.PhotoFiles(sorted(tmp_path.iterdir()), pipeline)[i] for i in range(2)]
    assert [[row.status for row in item["rows"]] for item in items] == [
        ["whole_image"],
        ["failed: the detector broke"],
    ]
    assert [len(item["crops"]) for item in items] == [1, 0]


# --- the engine: writer, merge, resume --------------------------------------------------------------


def test_the_engine_writes_what_the_in_process_path_writes(
    model: smile.Predictor, aligned: list[Path], tmp_path: Path
) -> None:
    counts = engine(model, aligned, tmp_path / "out.csv")
    assert (tmp_path / "out.csv").read_bytes() == in_process(model, aligned, tmp_path / "today.csv")
    assert not (tmp_path / "out.csv.parts").exists(), "the parts go once merged"
    assert counts is not None and (counts.photos, counts.faces, counts.unreadable) == (10, 9, 1)


def test_a_killed_run_resumes_with_every_photo_once(
    model: smile.Predictor, aligned: list[Path], tmp_path: Path
) -> None:
    whole = in_process(model, aligned, tmp_path / "today.csv")
    out = tmp_path / "out.csv"
    header = csv_header(model.attributes)
    parts = tmp_path / "out.csv.parts"
    parts.mkdir()
    (parts / "run.json").write_text(json.dumps(bulk.run_record(model, header)))
    lines = whole.splitlines(keepends=True)
    # what a kill -9 leaves: process 0 wrote the header and 4 photos, then half of the 5th's line;
    # process 1 (of an earlier run with two) wrote photos 7 and 8 in full
    (parts / "rank-00000.csv").write_bytes(b"".join(lines[:5]) + lines[5][:20])
    (parts / "rank-00001.csv").write_bytes(lines[0] + lines[7] + lines[8])
    assert not out.exists()
    predicted: list[str] = []
    original = bulk.PhotoFiles.__getitem__

    def spy(self, index):
        if index < len(self.files):
            predicted.append(Path(self.files[index]).name)
        return original(self, index)

    bulk.PhotoFiles.__getitem__ = spy  # type: ignore[method-assign]
    try:
        counts = engine(model, aligned, out)
    finally:
        bulk.PhotoFiles.__getitem__ = original  # type: ignore[method-assign]
    assert out.read_bytes() == whole, "every photo once, in input order, as one run writes it"
    # done: photos 1-3 (the 4th, last of its shard, may lack rows) and 7 (8 is its shard's last)
    assert predicted == [aligned[i].name for i in (3, 4, 5, 7, 8, 9)]
    assert counts is not None and counts.photos == 10 and not parts.exists()
    again = engine(model, aligned, out)  # a finished output: nothing left to predict, nothing changes
    assert out.read_bytes() == whole and again is not None and again.photos == 10


def test_a_bad_previous_output_or_part_is_refused_and_nothing_is_overwritten(
    model: smile.Predictor, aligned: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out.csv"
    out.write_text("a,b\n1,2\n")
    with pytest.raises(
        bulk.OutputError, match=r"out.csv is damaged or not a predictions file of this model \(columns 'a,b'"
    ):
        engine(model, aligned, out)
    assert out.read_text() == "a,b\n1,2\n" and not (tmp_path / "out.csv.parts").exists()

    out.unlink()
    whole = in_process(model, aligned, tmp_path / "today.csv").splitlines(keepends=True)
    parts = tmp_path / "out.csv.parts"
    parts.mkdir()
    record = bulk.run_record(model, csv_header(model.attributes))
    (parts / "run.json").write_text(json.dumps(record))
    shard = parts / "rank-00000.csv"
    shard.write_bytes(whole[0] + whole[1] + b"garbage,\r\n" + whole[2])
    with pytest.raises(
        bulk.OutputError, match=r"rank-00000.csv is damaged .*the record after byte \d+ has 2 fields"
    ):
        engine(model, aligned, out)
    assert shard.read_bytes() == whole[0] + whole[1] + b"garbage,\r\n" + whole[2] and not out.exists()

    shard.write_bytes(whole[0] + whole[1])
    (parts / "run.json").write_text(json.dumps({**record, "thresholds": [0.9]}))
    with pytest.raises(bulk.OutputError, match=r"holds an unfinished run with other thresholds"):
        engine(model, aligned, out)

    shard.write_bytes(whole[0] + whole[1][:10])  # no whole row yet: a run that stopped at its start
    assert engine(model, aligned, out) is not None and out.read_bytes() == b"".join(whole)

    (tmp_path / "out.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(bulk.OutputError, match=r"out.parquet is not a readable Parquet file"):
        engine(model, aligned, tmp_path / "out.parquet")
    assert (tmp_path / "out.parquet").read_bytes() == b"PAR1 not really"


def test_parquet_has_the_csv_columns_and_values(
    model: smile.Predictor, aligned: list[Path], tmp_path: Path
) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    engine(model, aligned, tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet").to_pylist()
    in_process(model, aligned, tmp_path / "today.csv")
    with open(tmp_path / "today.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(table[0]) == list(rows[0]) == csv_header(model.attributes)
    for got, want in zip(table, rows, strict=True):
        assert {k: "" if v is None else v for k, v in got.items() if isinstance(v, str) or v is None} == {
            k: want[k] for k, v in got.items() if isinstance(v, str) or v is None
        }
        assert all(abs(v - float(want[k])) < 1e-9 for k, v in got.items() if isinstance(v, float))
        assert all(v == int(want[k]) for k, v in got.items() if isinstance(v, int))
    # resuming from a finished Parquet output reads it back as the CSV it was made from
    before = (tmp_path / "out.parquet").read_bytes()
    engine(model, aligned + [aligned[0].with_name("late.jpg")], tmp_path / "out.parquet")
    assert pq.read_table(tmp_path / "out.parquet").num_rows == len(rows) + 1
    assert before != (tmp_path / "out.parquet").read_bytes()


# --- the command line ---------------------------------------------------------------------------------


def test_few_photos_run_without_lightning(aligned: list[Path], tmp_path: Path) -> None:
    command = [sys.executable, "-X", "importtime", "-m", "smile", "predict", str(aligned[0]), "--aligned"]
    result = subprocess.run(
        [*command, "--out", str(tmp_path / "p.csv")],
        env=smile_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert "torch" in imported and "pytorch_lightning" not in imported and "smile.photos.bulk" not in imported


def test_the_command_chooses_the_engine_by_count_and_options(aligned: list[Path]) -> None:
    from smile.commands.predict import MANY, build_parser, engine_wanted, output_file
    from smile.errors import OptionError

    def wanted(*argv: str, count: int = 5, backend: str = "checkpoint") -> bool:
        args = build_parser().parse_args(["x", *argv])
        return engine_wanted(args, [Path("x")] * count, backend, output_file(args.out, args.format)[1])

    assert not wanted() and wanted(count=MANY + 1) and not wanted(count=MANY + 1, backend="onnx")
    assert wanted("--num_workers", "0") and wanted("--trainer.devices", "2") and wanted("--out", "a.parquet")
    assert not wanted("--annotate_dir", "marked", count=MANY + 1)
    with pytest.raises(OptionError, match="--annotate_dir runs in this process"):
        wanted("--annotate_dir", "marked", "--num_workers", "2")
    assert not wanted("--out", "a.json", count=MANY + 1)  # JSON is written in this process
    with pytest.raises(OptionError, match="JSON is written in this process"):
        wanted("--format", "json", "--num_workers", "2")


def same_rows(path: Path, expected: bytes) -> None:
    """``path`` has ``expected``'s rows, in its order, probabilities within 1e-5 (other batches: other
    rounding in the last digit)."""
    got, want = (list(csv.reader(text.decode().splitlines())) for text in (path.read_bytes(), expected))
    assert [row[:8] + row[-1:] for row in got] == [row[:8] + row[-1:] for row in want]
    for a, b in zip(got[1:], want[1:]):
        assert all(abs(float(x or 0) - float(y or 0)) <= 1e-5 for x, y in zip(a[8:-1], b[8:-1]))


def torchrun(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    return subprocess.run(
        [*command, "-m", "smile", *args],
        cwd=cwd,
        env=smile_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_two_processes_under_torchrun_predict_every_photo_once(
    model: smile.Predictor, aligned: list[Path], smiling_checkpoint: Path, tmp_path: Path
) -> None:
    folder = aligned[0].parent
    flags = ["--ckpt_path", str(smiling_checkpoint), "--aligned", "--num_workers", "1", "--batch_size", "2"]
    result = torchrun(["predict", str(folder), *flags, "--out", "two.csv"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    assert result.stderr.count("Wrote 10 rows to two.csv") == 1, result.stderr[-4000:]
    same_rows(tmp_path / "two.csv", in_process(model, aligned, tmp_path / "one.csv"))
    # fewer photos left than processes: one of them has nothing but the padding, and ends cleanly
    result = torchrun(["predict", str(aligned[0]), *flags, "--out", "single.csv"], tmp_path)
    assert result.returncode == 0, result.stderr[-4000:]
    same_rows(tmp_path / "single.csv", in_process(model, aligned[:1], tmp_path / "one.csv"))
