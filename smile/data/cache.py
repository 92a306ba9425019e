"""The decoded cache: every image of a split decoded once into a uint8 array file, then served from memory.

CelebA's aligned faces are 178x218. The original transforms take a 178x178 window (centred for
evaluation, at a random height for training; horizontally it cannot move) and resize it to
``image_size``. The cache stores each image resized by ``image_size / 178`` once, as
``image_size`` wide and ``floor(218 * image_size / 178)`` tall (64x78 for 64x64 inputs), so that a
window of ``image_size`` rows is exactly a 178x178 window of the original: rows ``eval_offset``
onwards are the centre crop, and offsets ``0..max_offset`` cover the training crops' vertical
positions 0..40 (:mod:`smile.data.batch_transforms` cuts and flips the windows on the device).
A tighter window (``data.crop_size`` c < 178) keeps the same centre and the same 40 rows of vertical
play: the cache holds the central c columns and c + 40 rows, resized by ``image_size / c``.

One split's cache is three files in the cache folder, named ``<split>-<n>-<size>px``:

- ``.npy``: the images, ``(n, 3, height, image_size)`` uint8, memory-mapped for serving;
- ``.labels.npy``: the labels, ``(n, num_attributes)`` uint8;
- ``.json``: the manifest: format version, decoder, geometry, and fingerprints of the source files
  (names, sizes, modification times, in order) and of the labels.

A cache is used only when its manifest matches what the dataset on disk asks for now; a stale one is
rebuilt (only the labels file when only the labels changed). Builds write temporary files and rename
them into place, and the manifest is written last (and removed first when rebuilding), so a build
killed halfway never leaves a cache that looks valid. A file lock serialises builders (several
processes of one DDP run, or two runs sharing a cache folder).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.utils.data
from filelock import FileLock
from torch.utils.data import Dataset

from smile.console import say
from smile.data.celeba import ALIGNED_SIZE, CROP_PLAY, CROP_SIZE, IMAGE_SIZE, MIN_CROP_SIZE, centre_window
from smile.errors import DataError
from smile.io import atomic_write, check_space

#: Bumped whenever the cache's layout or contents change meaning; older caches are rebuilt.
FORMAT_VERSION = 1
SOURCE_WIDTH, SOURCE_HEIGHT = ALIGNED_SIZE
#: ``pil``: Pillow, decoding at half scale in the JPEG's DCT (``Image.draft``) before the resize,
#: about 2x faster, mean absolute difference to the JPEG pipeline about 0.002 on real faces;
#: ``pil-exact``: Pillow at full scale (difference about 0.0001); ``torchvision``:
#: ``torchvision.io.decode_jpeg`` in batches, on the GPU when there is one.
DECODERS = ("pil", "pil-exact", "torchvision")
CACHE_FOLDER = "smile-cache"
_CHUNK = 128  # images per task of a build worker


@dataclass(frozen=True)
class CacheGeometry:
    """Where the cached image sits in the source image, and where the network's windows sit in it."""

    image_size: int  # width of the cached image and side of the network's input
    height: int  # rows of the cached image
    max_offset: int  # training windows start at rows 0..max_offset
    eval_offset: int  # the evaluation (centre) window starts at this row
    top: float  # source row (fractional) of the cached image's top edge
    bottom: float  # source row of its bottom edge
    left: int  # source column of the cached image's left edge
    crop_size: int  # side of the network's window, in source pixels

    @property
    def scale(self) -> float:
        return self.image_size / self.crop_size

    @property
    def right(self) -> int:
        return self.left + self.crop_size

    def source_offset(self, offset: int) -> float:
        """The source row where a window starting at cached row ``offset`` starts (JPEG crops: 0..40)."""
        return self.top + offset / self.scale


def check_crop_size(crop_size: int) -> None:
    """A :class:`DataError` unless ``crop_size`` is a window that fits CelebA's aligned faces."""
    if not MIN_CROP_SIZE <= crop_size <= CROP_SIZE:
        raise DataError(
            f"data.crop_size is {crop_size}: give the side of the face window in pixels of CelebA's "
            f"{SOURCE_WIDTH}x{SOURCE_HEIGHT} aligned image, {MIN_CROP_SIZE} to {CROP_SIZE} ({CROP_SIZE}: the "
            "whole width, as the notebook)"
        )


def cache_geometry(image_size: int, crop_size: int = CROP_SIZE) -> CacheGeometry:
    """The cached image for ``image_size`` inputs: 64 -> 64x78, windows at rows 0..14, centre at 7
    (a 138-pixel window: 64x82, the source's columns 20..157 and rows 20.6..197.4)."""
    if image_size < 1:
        raise DataError(f"data.image_size is {image_size}: give a positive number of pixels")
    check_crop_size(crop_size)
    scale = image_size / crop_size
    height = max(image_size, math.floor((crop_size + CROP_PLAY) * scale + 1e-9))
    max_offset = height - image_size
    eval_offset = max_offset // 2
    left, centre_top = centre_window(crop_size)
    span = height / scale
    top = min(max(centre_top - eval_offset / scale, 0.0), SOURCE_HEIGHT - span)
    return CacheGeometry(image_size, height, max_offset, eval_offset, top, top + span, left, crop_size)


# ----------------------------------------------------------------------------------------------
# Decoding


def _decode_pil(path: Path, geometry: CacheGeometry, draft: bool) -> np.ndarray:
    """One image as ``(3, height, image_size)`` uint8, resized like the JPEG pipeline (PIL bilinear)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            size = image.size
            if size != (SOURCE_WIDTH, SOURCE_HEIGHT):
                raise DataError(
                    f"{path}: the decoded cache needs CelebA's aligned {SOURCE_WIDTH}x{SOURCE_HEIGHT} images, "
                    f"this one is {size[0]}x{size[1]}; set data.cache false to use the JPEG pipeline"
                )
            if draft and image.format == "JPEG":
                reduce = 2 if geometry.scale <= 0.5 else 1
                image.draft("RGB", (SOURCE_WIDTH // reduce, SOURCE_HEIGHT // reduce))
            image = image.convert("RGB")
    except FileNotFoundError as err:
        raise DataError(f"{path}: image listed in the annotations is missing") from err
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise DataError(f"{path}: not a readable image ({err})") from err
    k = image.size[0] / SOURCE_WIDTH  # 0.5 after a draft decode
    box = (geometry.left * k, geometry.top * k, geometry.right * k, geometry.bottom * k)
    resized = image.resize((geometry.image_size, geometry.height), Image.Resampling.BILINEAR, box=box)
    return np.asarray(resized).transpose(2, 0, 1)


def _build_worker_init() -> None:
    """Build workers take the default SIGTERM action and ignore Ctrl-C (the parent handles it).

    A worker forked from a running fit inherits the handlers that Lightning and
    :class:`smile.training.resume.ResumableTraining` install, which only set a flag: the pool's own SIGTERM at
    shutdown would then be caught, and the parent would wait for the worker forever.
    """
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pil_chunk(task: tuple[str, str, list[str], int, int, dict[str, Any], bool]) -> int:
    """Build worker: decode files ``[start, end)`` into the temporary array file; returns the count."""
    array_path, image_dir, files, start, end, geometry_fields, draft = task
    geometry = CacheGeometry(**geometry_fields)
    images = np.load(array_path, mmap_mode="r+")
    for i in range(start, end):
        images[i] = _decode_pil(Path(image_dir) / files[i - start], geometry, draft)
    images.flush()
    del images
    return end - start


def _torchvision_batches(
    image_dir: Path, files: Sequence[str], geometry: CacheGeometry, device: torch.device, batch: int = 512
) -> Iterator[tuple[int, np.ndarray]]:
    """``(start, images)`` chunks decoded with ``torchvision.io.decode_jpeg`` on ``device``.

    The source rows are rounded to whole pixels (216 rows at 64 pixels), so the vertical scale
    differs from the horizontal one by under 0.5%.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    top, bottom, left, right = round(geometry.top), round(geometry.bottom), geometry.left, geometry.right
    for start in range(0, len(files), batch):
        names = files[start : start + batch]
        data = []
        for name in names:
            try:
                data.append(torch.frombuffer(bytearray((image_dir / name).read_bytes()), dtype=torch.uint8))
            except FileNotFoundError as err:
                raise DataError(f"{image_dir / name}: image listed in the annotations is missing") from err
        try:
            decoded = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
        except RuntimeError as err:
            raise DataError(
                f"{image_dir}: a JPEG among {names[0]}..{names[-1]} is unreadable ({err})"
            ) from err
        for name, image in zip(names, decoded):
            if tuple(image.shape[1:]) != (SOURCE_HEIGHT, SOURCE_WIDTH):
                raise DataError(
                    f"{image_dir / name}: the decoded cache needs CelebA's aligned {SOURCE_WIDTH}x"
                    f"{SOURCE_HEIGHT} images, this one is {image.shape[2]}x{image.shape[1]}"
                )
        size = (geometry.height, geometry.image_size)
        if device.type == "cpu":  # image by image: small, single-threaded, fast uint8 kernel
            yield (
                start,
                np.stack(
                    [
                        torch.nn.functional.interpolate(
                            image[None, :, top:bottom, left:right], size=size, mode="bilinear", antialias=True
                        )[0].numpy()
                        for image in decoded
                    ]
                ),
            )
        else:  # on the GPU, the whole batch at once, in float
            stacked = torch.stack(decoded)[:, :, top:bottom, left:right].float()
            resized = torch.nn.functional.interpolate(stacked, size=size, mode="bilinear", antialias=True)
            yield start, resized.round_().clamp_(0, 255).to(torch.uint8).cpu().numpy()


def default_build_workers() -> int:
    """All the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def decode_images(
    image_dir: Path,
    files: Sequence[str],
    out: np.ndarray | str | Path,
    geometry: CacheGeometry,
    decoder: str = "pil",
    workers: int | None = None,
    progress: bool | None = None,
    desc: str = "decoding",
) -> None:
    """Decode ``files`` into ``out``: an array, or the path of an ``.npy`` file of the right shape
    (workers write to it directly; needed for ``workers > 1``)."""
    if decoder not in DECODERS:
        raise DataError(f"decoder is {decoder!r}; choose one of {', '.join(DECODERS)}")
    from tqdm import tqdm

    image_dir = Path(image_dir)
    bar = tqdm(
        total=len(files),
        desc=desc,
        unit="img",
        disable=(not sys.stderr.isatty()) if progress is None else not progress,
        mininterval=0.5,
    )
    with bar:
        if decoder == "torchvision":
            array = np.load(out, mmap_mode="r+") if isinstance(out, (str, Path)) else out
            device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            for start, chunk in _torchvision_batches(image_dir, files, geometry, device):
                array[start : start + len(chunk)] = chunk
                bar.update(len(chunk))
            if isinstance(array, np.memmap):
                array.flush()
            return
        draft = decoder == "pil"
        workers = default_build_workers() if workers is None else max(1, workers)
        if workers == 1 or len(files) <= 2 * _CHUNK or not isinstance(out, (str, Path)):
            array = np.load(out, mmap_mode="r+") if isinstance(out, (str, Path)) else out
            for i, name in enumerate(files):
                array[i] = _decode_pil(image_dir / name, geometry, draft)
                bar.update(1)
            if isinstance(array, np.memmap):
                array.flush()
            return
        fields = asdict(geometry)
        tasks = [
            (
                str(out),
                str(image_dir),
                list(files[s : s + _CHUNK]),
                s,
                min(s + _CHUNK, len(files)),
                fields,
                draft,
            )
            for s in range(0, len(files), _CHUNK)
        ]
        with multiprocessing.get_context().Pool(min(workers, len(tasks)), _build_worker_init) as pool:
            for count in pool.imap_unordered(_pil_chunk, tasks):
                bar.update(count)
            pool.close()
            pool.join()


# ----------------------------------------------------------------------------------------------
# Fingerprints, manifest, location


def files_fingerprint(image_dir: Path, files: Sequence[str]) -> str:
    """SHA-256 of the file names, sizes and modification times, in order (a stat per file, no reads)."""
    digest = hashlib.sha256()
    for name in files:
        try:
            stat = (Path(image_dir) / name).stat()
        except FileNotFoundError as err:
            raise DataError(f"{Path(image_dir) / name}: image listed in the annotations is missing") from err
        digest.update(f"{name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def labels_fingerprint(labels: np.ndarray) -> str:
    labels = np.ascontiguousarray(labels, dtype=np.uint8)
    return hashlib.sha256(f"{labels.shape}".encode() + labels.tobytes()).hexdigest()


def _writable_dir(path: Path) -> bool:
    """Whether ``path`` is a directory this process may and should write to. A folder whose mode has
    no write bit at all is treated as read-only even for root (a shared copy of the dataset)."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return path.is_dir() and bool(mode & 0o222) and os.access(path, os.W_OK | os.X_OK)


def user_cache_home() -> Path:
    """``$SMILE_CACHE``, else ``$XDG_CACHE_HOME/smile``, else ``~/.cache/smile``."""
    if os.environ.get("SMILE_CACHE"):
        return Path(os.environ["SMILE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "smile"


def resolve_cache_dir(root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """The folder of ``root``'s caches: ``cache_dir/<name>-<hash>`` when given; else ``root/smile-cache``
    when ``root`` is writable; else the same name under :func:`user_cache_home`."""
    root = Path(root).resolve()
    tag = f"{root.name or 'root'}-{hashlib.sha256(str(root).encode()).hexdigest()[:10]}"
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / tag
    beside = root / CACHE_FOLDER
    if _writable_dir(beside) or (not beside.exists() and _writable_dir(root)):
        return beside
    return user_cache_home() / tag


@dataclass(frozen=True)
class CacheKey:
    """What a cache must match to be used."""

    split: str
    count: int
    geometry: CacheGeometry
    decoder: str
    files: str  # files_fingerprint
    labels: str  # labels_fingerprint
    num_labels: int

    @property
    def stem(self) -> str:
        crop = "" if self.geometry.crop_size == CROP_SIZE else f"-crop{self.geometry.crop_size}"
        return f"{self.split}-{self.count}-{self.geometry.image_size}px{crop}"

    def manifest(self, image_bytes: int, label_bytes: int) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "split": self.split,
            "count": self.count,
            "shape": [self.count, 3, self.geometry.height, self.geometry.image_size],
            "dtype": "uint8",
            "geometry": asdict(self.geometry),
            "decoder": self.decoder,
            "files_fingerprint": self.files,
            "labels_fingerprint": self.labels,
            "num_labels": self.num_labels,
            "image_bytes": image_bytes,
            "label_bytes": label_bytes,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }


def _read_manifest(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _check(folder: Path, key: CacheKey) -> str:
    """``valid``, ``labels`` (images valid, labels stale) or ``stale`` (rebuild the images)."""
    manifest = _read_manifest(folder / f"{key.stem}.json")
    images, labels = folder / f"{key.stem}.npy", folder / f"{key.stem}.labels.npy"
    if (
        manifest is None
        or manifest.get("format_version") != FORMAT_VERSION
        or manifest.get("decoder") != key.decoder
        or manifest.get("geometry") != asdict(key.geometry)
        or manifest.get("count") != key.count
        or manifest.get("files_fingerprint") != key.files
        or not images.is_file()
        or images.stat().st_size != manifest.get("image_bytes")
    ):
        return "stale"
    try:
        array = np.load(images, mmap_mode="r")
        shape_ok = array.shape == tuple(manifest["shape"]) and array.dtype == np.uint8
        del array
    except (OSError, ValueError):
        shape_ok = False
    if not shape_ok:
        return "stale"
    if (
        manifest.get("labels_fingerprint") != key.labels
        or manifest.get("num_labels") != key.num_labels
        or not labels.is_file()
        or labels.stat().st_size != manifest.get("label_bytes")
    ):
        return "labels"
    return "valid"


# ----------------------------------------------------------------------------------------------
# The cache of one split


class CachedImages(Dataset):
    """``(images, labels)`` batches sliced from a decoded cache: uint8 ``(B, 3, height, size)`` images
    and float 0/1 labels. Indexed by a list of indices (``__getitems__``) it returns a whole batch;
    use :func:`collate_cached` as the DataLoader's ``collate_fn``.

    ``images`` is a (memory-mapped) NumPy array or a tensor, on the CPU or on a GPU.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, labels: torch.Tensor) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} label rows")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def device(self) -> torch.device:
        return self.images.device if isinstance(self.images, torch.Tensor) else torch.device("cpu")

    def __getitems__(self, indices: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(self.images, torch.Tensor):
            index = torch.as_tensor(indices, dtype=torch.long).to(self.images.device, non_blocking=True)
            return self.images[index], self.labels[index]
        index = np.asarray(indices, dtype=np.int64)
        return torch.from_numpy(self.images[index]), self.labels[torch.from_numpy(index)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = self.__getitems__([index])
        return images[0], labels[0]


def collate_cached(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The DataLoader's ``collate_fn`` for :class:`CachedImages`: batches come whole already."""
    return batch


@dataclass
class DecodedCache:
    """One split's valid cache on disk, and its contents."""

    folder: Path
    key: CacheKey
    status: str  # what opening it did: loaded, labels (rewrote the labels), built
    images: np.ndarray  # read-only memmap, (n, 3, height, size) uint8
    labels: np.ndarray  # (n, num_labels) uint8
    _device_images: torch.Tensor | None = None

    @property
    def geometry(self) -> CacheGeometry:
        return self.key.geometry

    @property
    def nbytes(self) -> int:
        return int(self.images.nbytes)

    def dataset(self, device: torch.device | str | None = None) -> CachedImages:
        """The images to serve, kept on ``device`` when given (copied there once), else memory-mapped."""
        labels = torch.from_numpy(np.asarray(self.labels, dtype=np.float32))
        if device is None:
            return CachedImages(self.images, labels)
        device = torch.device(device)
        if self._device_images is None or self._device_images.device != device:
            self._device_images = None
            target = torch.empty(self.images.shape, dtype=torch.uint8, device=device)
            step = max(1, (256 << 20) // max(1, self.images[0].nbytes))  # 256 MB at a time
            for start in range(0, len(self.images), step):
                chunk = torch.from_numpy(np.array(self.images[start : start + step]))
                target[start : start + step].copy_(chunk)
            self._device_images = target
        return CachedImages(self._device_images, labels.to(device))


def _remove(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def open_cache(
    split: str,
    image_dir: str | Path,
    files: Sequence[str],
    labels: np.ndarray,
    folder: str | Path,
    image_size: int = IMAGE_SIZE,
    decoder: str = "pil",
    workers: int | None = None,
    progress: bool | None = None,
    crop_size: int = CROP_SIZE,
) -> DecodedCache:
    """The cache of one split in ``folder``, built (or its labels rewritten) first when missing or stale.

    ``files`` are names under ``image_dir``; ``labels`` is ``(len(files), A)`` of 0/1.
    """
    if decoder not in DECODERS:
        raise DataError(f"decoder is {decoder!r}; choose one of {', '.join(DECODERS)}")
    image_dir, folder = Path(image_dir), Path(folder)
    labels = np.ascontiguousarray(np.asarray(labels).reshape(len(files), -1), dtype=np.uint8)
    key = CacheKey(
        split=split,
        count=len(files),
        geometry=cache_geometry(image_size, crop_size),
        decoder=decoder,
        files=files_fingerprint(image_dir, files),
        labels=labels_fingerprint(labels),
        num_labels=labels.shape[1],
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"Cannot create the cache folder {folder} ({err}); set data.cache_dir") from err
    manifest_path = folder / f"{key.stem}.json"
    images_path, labels_path = folder / f"{key.stem}.npy", folder / f"{key.stem}.labels.npy"
    status = "loaded"
    if _check(folder, key) != "valid":
        with FileLock(str(folder / f"{key.stem}.lock")):
            state = _check(folder, key)  # another process may have built it while we waited
            if state != "valid":
                _remove(manifest_path)  # from here on nothing looks valid until the new manifest lands
                if state == "stale":
                    status = "built"
                    _build_images(key, image_dir, files, images_path, decoder, workers, progress)
                else:
                    status = "labels"
                with atomic_write(labels_path, "wb") as handle:
                    np.save(handle, labels)
                manifest = key.manifest(images_path.stat().st_size, labels_path.stat().st_size)
                with atomic_write(manifest_path) as handle:
                    json.dump(manifest, handle, indent=1)
            if _check(folder, key) != "valid":
                raise DataError(
                    f"The cache {manifest_path} is still invalid after building it; delete {folder}"
                )
    return DecodedCache(
        folder=folder,
        key=key,
        status=status,
        images=np.load(images_path, mmap_mode="r"),
        labels=np.load(labels_path),
    )


def _build_images(
    key: CacheKey,
    image_dir: Path,
    files: Sequence[str],
    images_path: Path,
    decoder: str,
    workers: int | None,
    progress: bool | None,
) -> None:
    geometry = key.geometry
    for leftover in images_path.parent.glob(f".{images_path.name}.*.tmp"):
        _remove(leftover)  # from builds that were killed
    tmp = images_path.with_name(f".{images_path.name}.{os.getpid()}.tmp")
    shape = (key.count, 3, geometry.height, geometry.image_size)
    workers = default_build_workers() if workers is None else workers
    say(
        f"Decoding the {key.split} split ({key.count} images) once into {images_path} "
        f"({np.prod(shape) / 1e9:.2f} GB, {geometry.image_size}x{geometry.height}, decoder {decoder}, "
        f"{workers if decoder != 'torchvision' else 1} processes)"
    )
    started = time.perf_counter()
    check_space(images_path, int(np.prod(shape)) + 4096)  # a memory map on a full disk would kill the process
    try:
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape).flush()
        decode_images(
            image_dir, files, tmp, geometry, decoder, workers, progress, desc=f"decoding {key.split}"
        )
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, images_path)
    except BaseException:
        _remove(tmp)
        raise
    elapsed = time.perf_counter() - started
    say(f"Decoded {key.count} images in {elapsed:.1f} s ({key.count / max(elapsed, 1e-9):.0f} images/s)")


# ----------------------------------------------------------------------------------------------
# Serving


def serving_device(setting: bool | str, device: torch.device, nbytes: int) -> torch.device | None:
    """Where to keep a cache of ``nbytes`` for training on ``device``: that GPU, or ``None`` (host
    memory, memory-mapped). ``setting``: True, False or ``"auto"`` (on the GPU when the cache takes at
    most half of its free memory)."""
    if device.type != "cuda" or setting is False or setting in ("false", "False"):
        return None
    if setting is True or setting in ("true", "True"):
        return device
    if setting != "auto":
        raise DataError(f"on_device is {setting!r}; choose true, false or auto")
    free, _ = torch.cuda.mem_get_info(device)
    return device if nbytes <= free // 2 else None


def cached_loader(
    cache: DecodedCache,
    batch_size: int,
    sampler: torch.utils.data.Sampler | None = None,
    trainer: Any = None,
    on_device: bool | str = "auto",
) -> torch.utils.data.DataLoader:
    """A DataLoader of whole uint8 batches from ``cache`` in the order of ``sampler`` (default: the
    cache's order), in this process (no workers: slicing an array in memory is faster than handing
    batches between processes)."""
    # Lightning suggests loader processes for every loader without them; this one needs none.
    warnings.filterwarnings("ignore", message=r"The '\w+' does not have many workers")
    root = getattr(getattr(trainer, "strategy", None), "root_device", None) or torch.device("cpu")
    device = serving_device(on_device, root, cache.nbytes)
    dataset = cache.dataset(device)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=0,
        collate_fn=collate_cached,
        pin_memory=device is None and root.type == "cuda",
    )
