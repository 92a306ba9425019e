"""Predicting on many photos: Lightning's predict loop, the engine the project trains on.

``smile predict corpus/`` with many photos, or with ``--num_workers`` / ``--trainer.*``, runs here
(:func:`predict_many`); a few photos stay in the calling process (:meth:`smile.api.Predictor.predict_files`),
which starts without Lightning. The pieces:

- :class:`PhotoFiles`, a Dataset of the input files: ``__getitem__`` reads, detects and aligns one photo
  (in a DataLoader worker; each worker makes its own face detector) and gives its crops and its CSV rows
  still without probabilities; :func:`collate_photos` joins photos with any number of faces;
- :class:`PhotoPredictor`, a LightningModule around the network (``(N, 3, S, S)`` images in, ``(N, K)``
  probabilities out), run in batches on the accelerator;
- :class:`ShardWriter`, a ``BasePredictionWriter`` that appends each batch's rows to its process's shard
  (``OUT.parts/rank-NNNNN.csv``) and flushes, with the progress bar on process 0;
- :class:`Parts`: the shards and the run's record (``run.json``); checking them and a previous ``OUT``
  before anything is written, resuming (what is in them is not predicted again) and the merge into one
  ``OUT`` (CSV or Parquet, the columns of :mod:`smile.photos.predictions`), written atomically, each photo
  once, in input order.

Several processes (``--trainer.devices``, ``--trainer.num_nodes``, torchrun, SLURM) share the photos
through Lightning's predict sampler, which splits a dataset without repeating or padding it; process 0
prepares the parts and tells the others what is left (one broadcast), and merges after a barrier.

A kill leaves the parts: the same command again checks them, drops the cut-off end of each shard (the
last photo of a shard may be incomplete: it is predicted again) and predicts only what is missing.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import BasePredictionWriter
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from smile.errors import OptionError, SmileError
from smile.faces.aligner import WHOLE_IMAGE
from smile.install import install_hint
from smile.io import atomic_write
from smile.photos.pipeline import PhotoPipeline
from smile.photos.predictions import NO_FACE, OK, PREDICTED, csv_fields, csv_header, photo_rows
from smile.trained.description import ModelDescription

#: The output formats, by the suffix of ``--out``.
FORMATS = (".csv", ".parquet")
PREVIOUS = "previous.csv"  # a previous complete OUT, as a shard
RECORD = "run.json"


class OutputError(SmileError):
    """A previous output, or the parts of an unfinished run, that cannot be used; nothing was written."""


# --- the network: the one place that knows how a loaded model holds it ------------------------------


def inference_module(predictor: Any) -> tuple[nn.Module, ModelDescription]:
    """The torch module of a loaded :class:`smile.api.Predictor`'s
    :class:`~smile.trained.inference.InferenceModel` (images in ``[0, 1]``, ``(N, 3, S, S)`` -> ``(N, K)``
    probabilities) and its description. An ONNX model has no torch module: it runs in the calling
    process (:meth:`~smile.api.Predictor.predict_files`)."""
    module = predictor.model.module
    if module is None:
        raise OptionError(
            f"{predictor.source}: an {predictor.backend} model runs in this process only; leave out "
            "--num_workers and --trainer.* (or give the checkpoint it was exported from)"
        )
    return module, predictor.description


# --- data: one photo per item, read, detected and aligned in a worker -----------------------------------


class PhotoFiles(Dataset):
    """The input files; item ``i`` is photo ``i`` read, its faces found and aligned: ``{"rows": [PhotoRow,
    ...], "crops": uint8 (F, 3, S, S)}``, the rows (one per face, or one for a photo without a usable face)
    still without probabilities. ``length`` pads the dataset with empty items (no file, no row), so that
    each of several processes has one item even when fewer photos than processes are left."""

    def __init__(self, files: Sequence[str | Path], pipeline: PhotoPipeline, length: int = 0) -> None:
        self.files = [str(file) for file in files]
        self.pipeline = pipeline
        self.length = max(len(self.files), length)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, Any]:
        if index >= len(self.files):
            return {"rows": [], "crops": self.pipeline.tensor([])}
        photo = next(self.pipeline.photos([Path(self.files[index])]))
        crops = self.pipeline.tensor([face.aligned for face in photo.faces])
        return {"rows": photo_rows(photo, [[]] * len(photo.faces)), "crops": crops}


def collate_photos(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Photos with any number of faces as one batch: their crops concatenated, their rows one list per
    photo (the crops are in the order of the rows that get probabilities)."""
    return {"crops": torch.cat([item["crops"] for item in items]), "photos": [item["rows"] for item in items]}


def _worker_init(_: int) -> None:
    """One OpenCV thread per DataLoader worker: the workers are the parallelism (PyTorch sets its own
    threads to 1 in them)."""
    try:
        import cv2
    except ImportError:
        return
    cv2.setNumThreads(1)


class PhotoData(pl.LightningDataModule):
    """The photos left to predict: process 0 prepares the parts (:meth:`Parts.prepare`) in ``setup`` and
    tells the other processes which photos are left, so that all split the same list."""

    def __init__(
        self, files: Sequence[Path], parts: Parts, pipeline: PhotoPipeline, batch_size: int, num_workers: int
    ) -> None:
        super().__init__()
        self.files, self.parts, self.pipeline = files, parts, pipeline
        self.batch_size, self.num_workers = batch_size, num_workers
        self.pending: list[str] = []

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        assert trainer is not None
        answer: tuple[str, Any] | None = None
        if trainer.is_global_zero:
            try:
                answer = ("ok", self.parts.prepare(self.files))
            except SmileError as err:
                answer = ("error", str(err))
        answer = trainer.strategy.broadcast(answer, src=0)
        assert answer is not None
        if answer[0] == "error":
            raise OutputError(answer[1])
        self.pending = answer[1]

    def transfer_batch_to_device(self, batch: dict[str, Any], device: torch.device, dataloader_idx: int):
        return {**batch, "crops": batch["crops"].to(device)}  # the rows stay on the host

    def predict_dataloader(self) -> DataLoader:
        trainer = self.trainer
        assert trainer is not None
        dataset = PhotoFiles(self.pending, self.pipeline, length=trainer.world_size)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            collate_fn=collate_photos,
            worker_init_fn=_worker_init if self.num_workers else None,
            pin_memory=trainer.strategy.root_device.type == "cuda",
        )


# --- the network on the accelerator -------------------------------------------------------------------------


class PhotoPredictor(pl.LightningModule):
    """The network in Lightning's predict loop: ``predict_step`` takes a batch of :func:`collate_photos`
    (crops as uint8) and gives the faces' ``(F, K)`` probabilities. ``uint8``: the network takes the
    0-255 pixels itself."""

    def __init__(self, network: nn.Module, uint8: bool = False) -> None:
        super().__init__()
        self.network = network.eval()
        self.uint8 = uint8

    def forward(self, crops: Tensor) -> Tensor:
        return self.network(crops if self.uint8 else crops.float().div(255.0))  # as ToTensor does

    def predict_step(self, batch: dict[str, Any], batch_idx: int) -> Tensor:
        crops = batch["crops"]
        if len(crops) == 0:
            return torch.zeros(0)
        return self(crops).float()


# --- writing: a shard per process, flushed per batch ---------------------------------------------------------


@dataclass
class Counts:
    """What an output holds: photos, faces, photos without a face (and of those, predicted whole),
    unreadable files (including those over the pixel limit) and photos the detector failed on."""

    photos: int = 0
    rows: int = 0
    faces: int = 0
    no_face: int = 0
    whole: int = 0
    unreadable: int = 0
    failed: int = 0

    def add(self, statuses: Sequence[str]) -> None:
        self.photos += 1
        self.rows += len(statuses)
        first = statuses[0]
        self.faces += sum(1 for status in statuses if status == OK)
        self.no_face += first in (NO_FACE, WHOLE_IMAGE)
        self.whole += first == WHOLE_IMAGE
        self.unreadable += first.startswith("unreadable")
        self.failed += first.startswith("failed")

    def line(self) -> str:
        whole = f" ({self.whole} predicted whole)" if self.whole else ""
        return (
            f"{self.photos} photos: {self.faces} faces, {self.no_face} with no face found{whole}, "
            f"{self.unreadable} unreadable, {self.failed} failed"
        )


class ShardWriter(BasePredictionWriter):
    """Append each batch's rows to this process's shard and flush: all rows of a photo in one write.
    Process 0 shows the progress (photos per second, time left; its own pace times the processes)."""

    def __init__(self, parts: Parts, attributes: Sequence[str], thresholds: Sequence[float], progress: bool):
        super().__init__(write_interval="batch")
        self.parts, self.attributes, self.thresholds = parts, list(attributes), list(thresholds)
        self.progress = progress
        self.written = 0
        self.started = 0.0  # when the predict loop started (perf_counter)
        self._handle: Any = None
        self._bar: Any = None

    def on_predict_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()
        path = self.parts.shard(trainer.global_rank)
        new = not path.exists() or path.stat().st_size == 0
        self._handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed at the end)
        if new:
            csv.writer(self._handle).writerow(self.parts.header)
            self._handle.flush()
        if self.progress and trainer.is_global_zero:
            from tqdm import tqdm

            total = len(trainer.datamodule.pending)  # type: ignore[attr-defined]
            self._bar = tqdm(total=total, desc="Predicting", unit="photo", file=sys.stderr, disable=None)
        self._processes = trainer.world_size

    def write_on_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        prediction: Any,
        batch_indices: Sequence[int] | None,
        batch: dict[str, Any],
        batch_idx: int,
        dataloader_idx: int,
    ) -> None:
        probabilities = iter(prediction.cpu().tolist())
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        photos = 0
        for rows in batch["photos"]:
            if not rows:  # padding
                continue
            photos += 1
            for row in rows:
                if row.status in PREDICTED:
                    row.probabilities = next(probabilities)
                writer.writerow(csv_fields(row, self.attributes, self.thresholds))
        self._handle.write(buffer.getvalue())
        self._handle.flush()
        self.written += photos
        if self._bar is not None:
            self._bar.update(min(photos * self._processes, self._bar.total - self._bar.n))
        if trainer.received_sigterm:  # Lightning's predict loop notes SIGTERM and goes on: stop here
            self.close()
            self._stopped("SIGTERM")
            raise SystemExit(128 + signal.SIGTERM)

    def on_predict_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        self.close()
        if isinstance(exception, KeyboardInterrupt):
            self._stopped("Ctrl-C")

    def _stopped(self, how: str) -> None:
        from smile.console import say

        say(
            f"Stopped by {how}: the rows written so far are kept in {self.parts.folder}; the same command "
            "again continues"
        )

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._bar is not None:
            self._bar.close()
            self._bar = None


# --- the parts: checking, resuming, merging --------------------------------------------------------------


@dataclass
class _Scan:
    """A CSV of predictions read through: each photo's byte range (its rows are consecutive), the end of
    the last complete record and whether anything followed it (the cut-off end a kill leaves)."""

    photos: list[tuple[str, int, int, list[str]]] = field(default_factory=list)  # image, start, end, statuses
    complete: int = 0
    cut: bool = False


def _scan(path: Path, header: list[str]) -> _Scan:
    """Read a CSV of predictions (an output or a shard), checking every record; raises
    :class:`OutputError` naming the file for one that is not such a CSV with these columns."""
    scan = _Scan()
    offset = 0
    ended = False

    def lines() -> Iterator[str]:
        nonlocal offset, ended
        for raw in handle:
            if not raw.endswith(b"\n"):
                scan.cut = True
                break
            offset += len(raw)
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise OutputError(
                    f"{path}: not a predictions CSV (byte {offset - len(raw) + err.start} is not UTF-8)"
                ) from None
        ended = True

    def bad(what: str) -> OutputError:
        return OutputError(
            f"{path} is damaged or not a predictions file of this model ({what}); nothing was "
            "overwritten: move it away, or give another --out"
        )

    with open(path, "rb") as handle:
        reader = csv.reader(lines(), strict=True)
        try:
            first = next(reader, None)
        except csv.Error as err:
            raise bad(f"its first line: {err}") from err
        if first is None:  # empty, or a header cut off by a kill
            scan.cut = scan.cut or offset > 0
            return scan
        if first != header:
            raise bad(f"columns {','.join(first)[:120]!r}, expected {','.join(header)[:120]!r}")
        scan.complete = start = offset
        previous = None
        while True:
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                if ended:  # a record cut off inside a quoted field
                    scan.cut = True
                    break
                raise bad(f"after byte {start}: {err}") from err
            if len(fields) != len(header) or not fields[0] or not fields[7]:
                raise bad(f"the record after byte {start} has {len(fields)} fields, expected {len(header)}")
            image, status = fields[0], fields[7]
            if previous is not None and previous[0] == image:
                previous[2] = offset
                previous[3].append(status)
            else:
                if previous is not None:
                    scan.photos.append(tuple(previous))  # type: ignore[arg-type]
                previous = [image, start, offset, [status]]
            start = scan.complete = offset
        if previous is not None:
            scan.photos.append(tuple(previous))  # type: ignore[arg-type]
    scan.cut = scan.cut or scan.complete < path.stat().st_size
    return scan


def _holds_rows(path: Path) -> bool:
    """Whether a CSV has a complete line after its first (the header)."""
    with open(path, "rb") as handle:
        handle.readline()
        return handle.readline().endswith(b"\n")


class Parts:
    """``OUT.parts/`` beside the output: ``rank-NNNNN.csv`` (one shard per process, the output's columns),
    ``previous.csv`` (a previous complete ``OUT``, whose photos are not predicted again) and ``run.json``
    (the model and options of the run, which a resumed run must share)."""

    def __init__(self, out: Path, header: list[str], record: dict[str, Any]) -> None:
        if out.suffix.lower() not in FORMATS:
            raise OptionError(f"--out {out}: give a .csv or a .parquet file")
        self.out, self.header, self.record = out, header, record
        self.folder = out.with_name(out.name + ".parts")
        self.done: set[str] = set()
        self._last: dict[Path, int] = {}  # shard -> where its last (perhaps incomplete) photo starts
        self._fresh = False  # the parts hold no row of another run's: their record is rewritten

    @property
    def parquet(self) -> bool:
        return self.out.suffix.lower() == ".parquet"

    def shard(self, rank: int) -> Path:
        return self.folder / f"rank-{rank:05d}.csv"

    def shards(self) -> list[Path]:
        return sorted(self.folder.glob("rank-*.csv")) if self.folder.is_dir() else []

    def sources(self) -> list[Path]:
        previous = self.folder / PREVIOUS
        return ([previous] if previous.is_file() else []) + self.shards()

    def check(self) -> None:
        """Check the previous output and the parts, reading only: a file that is not what this run would
        write is refused (:class:`OutputError`, naming it) before anything is written. The photos done
        already are then in :attr:`done`."""
        self.done = set()
        if self.out.exists() and not self.out.is_file():
            raise OutputError(f"--out {self.out} is a folder: give a .csv or a .parquet file")
        if self.folder.exists():
            path = self.folder / RECORD
            try:
                record = json.loads(path.read_text())
            except (OSError, ValueError) as err:
                raise OutputError(
                    f"{path}: unreadable ({err}); it records the unfinished run in {self.folder}: "
                    "delete that folder to start afresh"
                ) from err
            if record != self.record and not any(_holds_rows(source) for source in self.sources()):
                self._fresh = True  # a run that stopped before its first photo: start it afresh
                self._last = {shard: 0 for shard in self.shards()}
            elif record != self.record:
                changed = sorted(
                    key for key in {**record, **self.record} if record.get(key) != self.record.get(key)
                )
                raise OutputError(
                    f"{self.folder} holds an unfinished run with other {', '.join(changed)} ({path}); finish it "
                    f"as it was started, or delete {self.folder} (or give another --out) to start afresh"
                )
            for source in [] if self._fresh else self.sources():
                scan = _scan(source, self.header)
                photos = scan.photos
                if source.name == PREVIOUS and scan.cut:  # written whole, or not at all
                    raise OutputError(f"{source} is cut off; delete {self.folder} to start afresh")
                if source.name != PREVIOUS and photos:  # the last photo of a shard may lack rows
                    self._last[source] = photos[-1][1]
                    photos = photos[:-1]
                elif source.name != PREVIOUS:
                    self._last[source] = scan.complete
                self.done.update(image for image, *_ in photos)
        if self.out.is_file() and not (self.folder / PREVIOUS).is_file():
            self.done.update(self._previous_images())

    def _previous_images(self) -> Iterator[str]:
        if not self.parquet:
            scan = _scan(self.out, self.header)
            if scan.cut:
                raise OutputError(
                    f"{self.out} is cut off; nothing was overwritten: move it away, or give another --out"
                )
            return (image for image, *_ in scan.photos)
        pq = _parquet()
        try:
            names = pq.ParquetFile(self.out).schema_arrow.names
            images = (
                pq.read_table(self.out, columns=["image"]).column("image").to_pylist()
                if names == self.header
                else []
            )
        except Exception as err:  # pyarrow's errors for a damaged file are of several types
            raise OutputError(
                f"{self.out} is not a readable Parquet file ({err}); nothing was overwritten"
            ) from err
        if names != self.header:
            raise OutputError(
                f"{self.out} is not a predictions file of this model (columns {','.join(names)[:120]!r}); "
                "nothing was overwritten: move it away, or give another --out"
            )
        return iter(images)

    def prepare(self, files: Sequence[Path]) -> list[str]:
        """Process 0, before any photo: make the parts folder and its record, keep a previous output as
        ``previous.csv``, cut each shard back to its last whole photo; the files left to predict."""
        self.folder.mkdir(parents=True, exist_ok=True)
        if self._fresh or not (self.folder / RECORD).is_file():
            with atomic_write(self.folder / RECORD) as handle:
                json.dump(self.record, handle, indent=1)
        if self.out.is_file() and not (self.folder / PREVIOUS).is_file():
            self._keep_previous()
        for shard, end in self._last.items():
            with open(shard, "r+b") as handle:
                handle.truncate(end)
        return [str(file) for file in files if str(file) not in self.done]

    def _keep_previous(self) -> None:
        target = self.folder / PREVIOUS
        if not self.parquet:
            with open(self.out, "rb") as source, atomic_write(target, "wb") as handle:
                shutil.copyfileobj(source, handle)
            return
        columns = self.header
        with atomic_write(target, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for batch in _parquet().ParquetFile(self.out).iter_batches(batch_size=8192):
                data = batch.to_pydict()
                for values in zip(*(data[name] for name in columns)):
                    writer.writerow(_csv_text(values, columns))

    def merge(self, files: Sequence[Path]) -> Counts:
        """Process 0, after every process finished: the shards (and a previous output) as one ``OUT``,
        written atomically, every photo once: the inputs in their order, then any other photo of a
        previous output; then the parts are removed. Returns what the output holds."""
        sources = self.sources()
        where: dict[str, tuple[int, int, int]] = {}
        counts = Counts()
        for number, source in enumerate(sources):
            for image, start, end, statuses in _scan(source, self.header).photos:
                if image not in where:
                    where[image] = (number, start, end)
                    counts.add(statuses)
        inputs = [str(file) for file in files]
        missing = [image for image in inputs if image not in where]
        if missing:
            raise OutputError(
                f"{len(missing)} photos have no rows in {self.folder} (first: {missing[0]}); run again"
            )
        given = set(inputs)
        order = inputs + [image for image in where if image not in given]  # a previous output's others
        handles = [open(source, "rb") for source in sources]  # noqa: SIM115 (closed below)
        try:

            def chunks() -> Iterator[bytes]:
                for image in order:
                    number, start, end = where[image]
                    handle = handles[number]
                    handle.seek(start)
                    yield handle.read(end - start)

            if self.parquet:
                self._write_parquet(chunks())
            else:
                with atomic_write(self.out, "wb") as out:
                    buffer = io.StringIO()
                    csv.writer(buffer).writerow(self.header)
                    out.write(buffer.getvalue().encode("utf-8"))
                    for chunk in chunks():
                        out.write(chunk)
        finally:
            for handle in handles:
                handle.close()
        shutil.rmtree(self.folder)
        return counts

    def _write_parquet(self, chunks: Iterator[bytes], rows_per_group: int = 65536) -> None:
        """The rows (CSV bytes, as the shards hold them) as Parquet, a row group at a time, parsed by
        pyarrow's CSV reader with the output's schema (empty fields of numbers are nulls)."""
        pq, pacsv = _parquet(), _arrow_csv()
        schema = parquet_schema(self.header)
        header = (",".join(self.header) + "\r\n").encode("utf-8")
        convert = pacsv.ConvertOptions(
            column_types=dict(zip(schema.names, schema.types)), strings_can_be_null=False
        )
        parse = pacsv.ParseOptions(newlines_in_values=True)
        with atomic_write(self.out, "wb") as handle, pq.ParquetWriter(handle, schema) as writer:
            pending: list[bytes] = []
            size = 0
            for chunk in chunks:
                pending.append(chunk)
                size += chunk.count(b"\n")
                if size >= rows_per_group:
                    table = pacsv.read_csv(
                        io.BytesIO(header + b"".join(pending)), parse_options=parse, convert_options=convert
                    )
                    writer.write_table(table.select(schema.names).cast(schema))
                    pending, size = [], 0
            if pending:
                table = pacsv.read_csv(
                    io.BytesIO(header + b"".join(pending)), parse_options=parse, convert_options=convert
                )
                writer.write_table(table.select(schema.names).cast(schema))


# --- Parquet: the CSV's columns, typed ------------------------------------------------------------------


def _arrow():
    try:
        import pyarrow
    except ImportError as err:
        raise OptionError(
            f"a .parquet output needs pyarrow: {install_hint('parquet')} (or give a .csv)"
        ) from err
    return pyarrow


def _parquet():
    _arrow()
    import pyarrow.parquet

    return pyarrow.parquet


def _arrow_csv():
    _arrow()
    import pyarrow.csv

    return pyarrow.csv


INTEGER_COLUMNS = ("face", "box_x", "box_y", "box_w", "box_h")
TEXT_COLUMNS = ("image", "status", "predicted")


def parquet_schema(header: Sequence[str]):
    """The Parquet output's schema: the CSV's columns, in its order; the face index and box as integers,
    the score and probabilities as floats (empty CSV fields are nulls), the rest as text."""
    pa = _arrow()
    kinds = {name: pa.int64() for name in INTEGER_COLUMNS} | {name: pa.string() for name in TEXT_COLUMNS}
    return pa.schema([(name, kinds.get(name, pa.float64())) for name in header])


def _csv_text(values: Sequence[Any], columns: Sequence[str]) -> list[str]:
    """A Parquet row as the CSV writes it (scores to 4 decimals, probabilities to 6)."""
    out = []
    for name, value in zip(columns, values):
        if value is None:
            out.append("")
        elif name in TEXT_COLUMNS or name in INTEGER_COLUMNS:
            out.append(str(value))
        elif name == "score":
            out.append(f"{value:.4f}")
        else:
            out.append(f"{value:.6f}")
    return out


# --- the run ------------------------------------------------------------------------------------------


def launcher_processes() -> tuple[int, int] | None:
    """``(processes per machine, machines)`` when launched by torchrun (or another launcher that sets
    ``LOCAL_WORLD_SIZE`` and ``WORLD_SIZE``) with several processes, else ``None``."""
    world, local = os.environ.get("WORLD_SIZE", ""), os.environ.get("LOCAL_WORLD_SIZE", "")
    if world.isdigit() and local.isdigit() and int(world) > 1:
        return int(local), max(1, int(world) // max(1, int(local)))
    return None


def trainer_settings(options: dict[str, Any]) -> dict[str, Any]:
    """The Trainer's accelerator, devices, nodes, strategy and precision: the given ``--trainer.*``
    options, else what a launcher says (torchrun), else one CPU process."""
    settings: dict[str, Any] = {"accelerator": "cpu", "devices": 1, "num_nodes": 1, "strategy": "auto"}
    launched = launcher_processes()
    if launched is not None:
        settings["devices"], settings["num_nodes"] = launched
    settings.update({name: value for name, value in options.items() if value is not None})
    for name in ("devices", "num_nodes"):
        value = settings[name]
        if isinstance(value, str) and value.lstrip("-").isdigit():
            settings[name] = int(value)
    return settings


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def default_workers(processes_here: int) -> int:
    """DataLoader workers per process: the CPU cores this process may use, shared by the processes on
    this machine (at least 1)."""
    return max(1, _cores() // max(1, processes_here))


def network_threads(processes_here: int, workers: int) -> int:
    """PyTorch threads for a network on the CPU beside ``workers`` busy workers: the cores they leave
    (at least 1). More threads than cores would spin against the workers: on 2 cores with 2 workers, the
    network's 2 default threads cost more CPU per photo than all of the detection."""
    return max(1, _cores() // max(1, processes_here) - workers)


def run_record(predictor: Any, header: list[str]) -> dict[str, Any]:
    """What a resumed run must share with the run it continues: the columns, the model, its thresholds
    and how faces are found."""
    options = predictor.options
    return {
        "columns": header,
        "model": str(predictor.source),
        "thresholds": [float(t) for t in predictor.thresholds],
        "faces": {
            "detector": str(options.detector),
            "min_face": options.min_face,
            "no_face": options.no_face,
            "max_pixels": options.max_pixels,
            "aligned": predictor.pipeline.aligned,
        },
    }


def predict_many(
    predictor: Any,
    files: Sequence[Path],
    out: Path,
    batch_size: int = 64,
    num_workers: int | None = None,
    trainer: dict[str, Any] | None = None,
    progress: bool = True,
) -> Counts | None:
    """Predict ``files`` with Lightning's predict loop into ``out`` (``.csv`` or ``.parquet``), resuming
    from its parts when a run was stopped; prints a summary. Returns what ``out`` holds on process 0,
    ``None`` on the others."""
    from smile.console import quiet_upstream, say
    from smile.devices import check_devices, cpu_precision, runs_on_cpu

    quiet_upstream()
    network, description = inference_module(predictor)
    header = csv_header(predictor.attributes)
    parts = Parts(Path(out), header, run_record(predictor, header))
    if parts.parquet:
        _parquet()
    parts.check()  # every process, before any writes: a bad file stops all of them alike
    done = sum(1 for file in files if str(file) in parts.done)
    settings = trainer_settings(trainer or {})
    check_devices(settings["accelerator"], settings["devices"])  # no GPU here: one line, not a traceback
    if "precision" in settings:
        settings["precision"], note = cpu_precision(settings["accelerator"], settings["precision"])
        if note:
            say(note)
    devices = settings["devices"] if isinstance(settings["devices"], int) and settings["devices"] > 0 else 1
    workers = default_workers(devices) if num_workers is None else num_workers
    if runs_on_cpu(settings["accelerator"]) and workers > 0:
        torch.set_num_threads(min(torch.get_num_threads(), network_threads(devices, workers)))
    pipeline = predictor.pipeline
    pipeline = PhotoPipeline(
        pipeline.image_size, pipeline.crop_size, pipeline.options, pipeline.aligned, uint8=True
    )
    data = PhotoData(files, parts, pipeline, batch_size, workers)
    writer = ShardWriter(parts, predictor.attributes, predictor.thresholds.tolist(), progress)
    module = PhotoPredictor(network, uint8=description.input_dtype == "uint8")
    chatter = logging.getLogger("pytorch_lightning.utilities.rank_zero")
    level = chatter.level
    chatter.setLevel(logging.WARNING)  # "GPU available: False, used: False" and the like
    try:
        runner = pl.Trainer(
            **settings,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            callbacks=[writer],
        )
    finally:
        chatter.setLevel(level)
    if done:
        say(
            f"Resuming: {done} of the {len(files)} photos are done already (in {parts.out} or {parts.folder}/)"
        )
    runner.predict(module, datamodule=data, return_predictions=False)
    seconds = time.perf_counter() - writer.started  # from the loop's start: workers' start included
    runner.strategy.barrier("smile-merge")
    if not runner.is_global_zero:
        return None
    counts = parts.merge(files)
    processes = runner.world_size
    pace = len(data.pending) / seconds if seconds > 0 else 0.0
    say(
        f"Predicted {len(data.pending)} photos in {seconds:.1f} s ({pace:.1f} photos/s; {processes} "
        f"process{'es' if processes > 1 else ''}, {workers} worker{'s' if workers != 1 else ''} each)"
        + (f"; {done} were done before" if done else "")
    )
    say(counts.line())
    say(f"Wrote {counts.rows} rows to {parts.out}")
    return counts
