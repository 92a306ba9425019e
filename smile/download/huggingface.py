"""The Hugging Face parquet mirror (flwrlabs/celeba), converted to the official layout the trainer reads.

The mirror's schema (config ``img_align+identity+attr``): shards ``train-*.parquet``, ``valid-*.parquet`` and
``test-*.parquet`` (or ``train/0000.parquet``, ...), with an ``image`` struct (``bytes``, ``path``), an integer
``celeb_id`` and the 40 attributes as boolean columns named as in CelebA. Image bytes are written as they are
(no re-encoding, unless ``image_format="jpg"`` is asked for a mirror that stores PNG), named as in the official
release when ``image.path`` gives that name and numbered in split order otherwise. The split of each shard
becomes ``list_eval_partition.txt``, so the official partition is kept.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

from tqdm.auto import tqdm

from smile.data.celeba import CELEBA_ATTRIBUTES
from smile.download.common import (
    DownloadError,
    next_source_hint,
    remove,
    require,
    say,
)

HF_REPO = "flwrlabs/celeba"
HF_CONFIG = "img_align+identity+attr"
#: Splits by the names the mirror uses, with their code in ``list_eval_partition.txt``.
SPLIT_CODES = {"train": 0, "valid": 1, "validation": 1, "val": 1, "test": 2}
OFFICIAL_COUNT = 202_599
PARQUET_CACHE = ".hf-parquet"
STAGING = ".hf-convert"
_OFFICIAL_NAME = re.compile(r"(\d{6})\.(?:jpg|jpeg|png)", re.IGNORECASE)
_JPEG, _PNG = b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n"


def snapshot(repo: str, revision: str | None, endpoint: str | None, local_dir: Path) -> Path:
    """Download (or resume) the mirror's parquet shards with huggingface_hub; returns the local folder."""
    hub = require("huggingface_hub", "huggingface_hub", "huggingface")
    errors = getattr(hub, "errors", None)
    gated = getattr(errors, "GatedRepoError", ())
    missing = getattr(errors, "RepositoryNotFoundError", ())
    try:
        folder = hub.snapshot_download(  # type: ignore[attr-defined]
            repo_id=repo,
            repo_type="dataset",
            revision=revision,
            allow_patterns=[f"{HF_CONFIG}/*.parquet", f"{HF_CONFIG}/*/*.parquet"],
            local_dir=str(local_dir),
            endpoint=endpoint,
        )
    except gated as err:
        raise DownloadError(
            f"huggingface: {repo} is gated: accept its conditions at https://huggingface.co/datasets/{repo} "
            "while logged in, then log in here with `hf auth login` (or set HF_TOKEN) and run again."
        ) from err
    except missing as err:
        raise DownloadError(f"huggingface: the dataset {repo} was not found on the Hub ({err})") from err
    except Exception as err:  # network errors: huggingface_hub keeps *.incomplete files and resumes them
        raise DownloadError(
            f"huggingface: downloading {repo} failed ({type(err).__name__}: {str(err).splitlines()[0]}). What "
            f"was received is kept in {local_dir} and the next run resumes it."
        ) from err
    return Path(folder)


def split_of(path: Path) -> str:
    """The split a shard belongs to, from its file name (``train-00000-of-00019``) or folder (``train/``)."""
    for candidate in (path.name.split("-")[0].split(".")[0], path.parent.name):
        if candidate.lower() in SPLIT_CODES:
            return candidate.lower()
    raise DownloadError(
        f"huggingface: cannot tell the split of {path} (expected train, valid or test in its name)"
    )


def order_shards(files: list[Path]) -> list[Path]:
    """Shards in the official order: train, then valid, then test; by name within a split."""
    return sorted(files, key=lambda f: (SPLIT_CODES[split_of(f)], str(f)))


def _extension(data: bytes) -> str:
    if data.startswith(_JPEG):
        return ".jpg"
    if data.startswith(_PNG):
        return ".png"
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return "." + (image.format or "img").lower()
    except Exception as err:
        raise DownloadError(f"huggingface: an image of the mirror is not a readable image ({err})") from err


def _to_jpeg(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        out = io.BytesIO()
        image.convert("RGB").save(out, format="JPEG", quality=95)
        return out.getvalue()


def _columns(schema_names: list[str], path: Path) -> tuple[str, str | None]:
    """Image and identity column names of a shard, checking that the 40 attributes are there."""
    missing = [name for name in CELEBA_ATTRIBUTES if name not in schema_names]
    if missing:
        raise DownloadError(
            f"huggingface: {path.name} lacks {len(missing)} attribute column(s) ({', '.join(missing[:5])}...); "
            "it is not in the flwrlabs/celeba schema"
        )
    image = next((name for name in ("image", "img") if name in schema_names), None)
    if image is None:
        raise DownloadError(f"huggingface: {path.name} has no 'image' column")
    identity = next((name for name in ("celeb_id", "identity", "celeb") if name in schema_names), None)
    return image, identity


def convert_parquet(
    files: list[Path], root: Path, image_format: str = "keep", batch_size: int = 256, progress: bool = True
) -> dict[str, int]:
    """Write the shards as ``root/img_align_celeba/*`` plus the official annotation files.

    Works in ``root/.hf-convert`` and renames into place at the end (annotation files first, the image
    folder last), so an interrupted conversion never looks complete; a rerun skips images already written.
    Returns the number of images per split.
    """
    pq = require("pyarrow.parquet", "pyarrow", "huggingface")
    if not files:
        raise DownloadError("huggingface: no parquet shards to convert")
    if image_format not in ("keep", "jpg"):
        raise ValueError(f"image_format must be 'keep' or 'jpg', not {image_format!r}")
    images_final = root / "img_align_celeba"
    if images_final.exists():
        raise DownloadError(
            f"huggingface: {images_final} already exists (from another download); the conversion would replace "
            "it. Move it away or choose another --data.root."
        )
    files = order_shards(files)
    staging = root / STAGING
    image_dir = staging / "img_align_celeba"
    image_dir.mkdir(parents=True, exist_ok=True)
    shards = [pq.ParquetFile(f) for f in files]  # type: ignore[attr-defined]
    total = sum(shard.metadata.num_rows for shard in shards)
    attr_lines: list[str] = []
    partition_lines: list[str] = []
    identity_lines: list[str] = []
    counts: dict[str, int] = {}
    seen: set[str] = set()
    index = 0
    with tqdm(total=total, unit="img", desc="Converting parquet", disable=not progress) as bar:
        for path, shard in zip(files, shards):
            split = split_of(path)
            code = SPLIT_CODES[split]
            image_col, identity_col = _columns(shard.schema_arrow.names, path)
            columns = [image_col, *CELEBA_ATTRIBUTES] + ([identity_col] if identity_col else [])
            for batch in shard.iter_batches(batch_size=batch_size, columns=columns):
                images = batch.column(image_col)
                if hasattr(images, "field"):  # struct {bytes, path}
                    blobs = images.field("bytes").to_pylist()
                    paths = (
                        images.field("path").to_pylist() if images.type.get_field_index("path") >= 0 else None
                    )
                else:  # plain binary column
                    blobs, paths = images.to_pylist(), None
                flags = [batch.column(name).to_pylist() for name in CELEBA_ATTRIBUTES]
                ids = batch.column(identity_col).to_pylist() if identity_col else None
                for row, data in enumerate(blobs):
                    index += 1
                    if data is None:
                        raise DownloadError(f"huggingface: row {index} of {path.name} has no image bytes")
                    if image_format == "jpg" and not data.startswith(_JPEG):
                        data = _to_jpeg(data)
                    match = _OFFICIAL_NAME.fullmatch(os.path.basename(paths[row] or "")) if paths else None
                    name = (match.group(1) if match else f"{index:06d}") + _extension(data)
                    if name in seen:
                        raise DownloadError(f"huggingface: two images of the mirror are both named {name}")
                    seen.add(name)
                    target = image_dir / name
                    if not (target.is_file() and target.stat().st_size == len(data)):
                        with open(target, "wb") as handle:
                            handle.write(data)
                    values = " ".join(" 1" if column[row] else "-1" for column in flags)
                    attr_lines.append(f"{name} {values}")
                    partition_lines.append(f"{name} {code}")
                    if ids is not None:
                        identity_lines.append(f"{name} {ids[row]}")
                bar.update(len(blobs))
            counts[split] = counts.get(split, 0) + shard.metadata.num_rows
    annotations = {
        "list_attr_celeba.txt": [str(len(attr_lines)), " ".join(CELEBA_ATTRIBUTES) + " ", *attr_lines],
        "list_eval_partition.txt": partition_lines,
    }
    if identity_lines:
        annotations["identity_CelebA.txt"] = identity_lines
    for name, lines in annotations.items():
        (staging / name).write_text("\n".join(lines) + "\n")
    for name in annotations:
        os.replace(staging / name, root / name)
    os.replace(image_dir, images_final)
    remove(staging)
    say(
        f"huggingface: converted {total:,} images ("
        + ", ".join(f"{split} {count:,}" for split, count in counts.items())
        + f") into {images_final}"
        + (f"; note: the official release has {OFFICIAL_COUNT:,}" if total != OFFICIAL_COUNT else "")
    )
    return counts


def download_huggingface(
    root: Path,
    repo: str = HF_REPO,
    revision: str | None = None,
    endpoint: str | None = None,
    image_format: str = "keep",
    keep_archive: bool = False,
) -> dict[str, int]:
    """Fetch the parquet mirror (resuming), convert it in place, and delete the parquet unless kept."""
    require("pyarrow.parquet", "pyarrow", "huggingface")
    if (root / "img_align_celeba").exists():
        raise DownloadError(
            f"huggingface: {root / 'img_align_celeba'} already exists (from another download); the conversion "
            f"would replace it. Move it away or choose another --data.root. {next_source_hint('huggingface', root)}"
        )
    cache = root / PARQUET_CACHE
    say(f"huggingface: downloading the parquet shards of {repo} ({HF_CONFIG}) into {cache}")
    folder = snapshot(repo, revision, endpoint, cache)
    files = [f for f in folder.rglob("*.parquet") if ".cache" not in f.parts]
    if not files:
        raise DownloadError(f"huggingface: {repo} has no parquet shards under {HF_CONFIG}/")
    counts = convert_parquet(files, root, image_format=image_format)
    if not keep_archive:
        remove(cache)
    return counts
