"""Measure the Hugging Face route: parquet -> official layout conversion speed, and reading images for
training from the converted files versus from the parquet in place.

``python benchmarks/download_read.py --images 2000`` renders a synthetic CelebA (178x218 JPEG faces, see
:mod:`smile.data.synthetic`), writes it as parquet shards in the mirror's schema (with the JPEG bytes as they are,
then re-encoded as PNG), and reports images per second.
"""

from __future__ import annotations

import argparse
import io
import random
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from smile.data.celeba import CELEBA_ATTRIBUTES


def write_shards(dataset: Path, folder: Path, image_format: str) -> list[Path]:
    """Parquet shards, one per split, in flwrlabs/celeba's schema, from a dataset in the official layout."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from smile.download.huggingface import SPLIT_CODES

    folder.mkdir(parents=True, exist_ok=True)
    attributes = (dataset / "list_attr_celeba.txt").read_text().splitlines()[2:]
    partition = dict(line.split() for line in (dataset / "list_eval_partition.txt").read_text().splitlines())
    identity = dict(line.split() for line in (dataset / "identity_CelebA.txt").read_text().splitlines())
    paths = []
    for split in ("train", "valid", "test"):
        rows = [line.split() for line in attributes if partition[line.split()[0]] == str(SPLIT_CODES[split])]
        images = []
        for row in rows:
            data = (dataset / "img_align_celeba" / row[0]).read_bytes()
            if image_format == "PNG":
                out = io.BytesIO()
                Image.open(io.BytesIO(data)).save(out, format="PNG")
                data = out.getvalue()
            images.append({"bytes": data, "path": row[0]})
        columns: dict[str, list] = {"image": images, "celeb_id": [int(identity[row[0]]) for row in rows]}
        for k, name in enumerate(CELEBA_ATTRIBUTES):
            columns[name] = [row[k + 1] == "1" for row in rows]
        path = folder / f"{split}-00000-of-00001.parquet"
        pq.write_table(pa.table(columns), path)
        paths.append(path)
    return paths


def decode(data: bytes | Path) -> None:
    with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as image:
        image.convert("RGB").load()


def read_files(image_dir: Path, order: list[int]) -> None:
    """Open and decode converted files in a shuffled order (what a training epoch does)."""
    files = sorted(image_dir.iterdir())
    for i in order:
        decode(files[i])


def read_parquet(shards: list[Path], order: list[int]) -> None:
    """Decode images straight from the parquet (memory-mapped column, random access by row)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(path, columns=["image"], memory_map=True) for path in shards]
    column = pa.concat_arrays([chunk for table in tables for chunk in table["image"].chunks]).field("bytes")
    for i in order:
        decode(column[i].as_py())


def best_rate(count: int, repeats: int, run: Callable[[int], None]) -> float:
    """Items per second of the fastest of ``repeats`` runs (the machine may be shared)."""
    best = float("inf")
    for k in range(repeats):
        start = time.perf_counter()
        run(k)
        best = min(best, time.perf_counter() - start)
    return count / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/download_read.py", description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3, help="each figure is the best of this many runs")
    parser.add_argument("--workdir", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    from smile.data.synthetic import generate_dataset
    from smile.download.huggingface import convert_parquet

    n = args.images
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        work = Path(tmp)
        order = list(range(n))
        random.Random(0).shuffle(order)
        dataset = generate_dataset(work / "synthetic", n, seed=0)
        shards = {fmt: write_shards(dataset, work / f"parquet-{fmt}", fmt) for fmt in ("JPEG", "PNG")}
        print(f"{n} synthetic 178x218 images, best of {args.repeats} runs, images per second:")
        for fmt, mode in (("JPEG", "keep"), ("PNG", "keep"), ("PNG", "jpg")):
            size = sum(p.stat().st_size for p in shards[fmt]) / n / 1000
            out = work / f"out-{fmt}-{mode}"
            convert = best_rate(
                n,
                args.repeats,
                lambda k, src=shards[fmt], out=out, mode=mode: convert_parquet(
                    src, out / str(k), image_format=mode, progress=False
                ),
            )
            files = best_rate(
                n, args.repeats, lambda k, out=out: read_files(out / "0" / "img_align_celeba", order)
            )
            inplace = best_rate(n, args.repeats, lambda k, src=shards[fmt]: read_parquet(src, order))
            print(
                f"  {fmt:<4} in parquet ({size:4.1f} KB/image), --image_format {mode:<4}: convert {convert:6.0f} | "
                f"training reads (open + decode, shuffled): converted files {files:5.0f}, parquet in place "
                f"{inplace:5.0f}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
