"""``python -m smile download`` against local stand-ins: an HTTP server on 127.0.0.1 for Google Drive,
parquet files written here in the Hugging Face mirror's schema, and a fake Kaggle API. No internet."""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from PIL import Image

from smile.commands.download import main as download_main
from smile.data import html_pages
from smile.data.celeba import CELEBA_ATTRIBUTES
from smile.download import common, gdrive, huggingface, kaggle

N_IMAGES = 10
IMAGE_NAMES = [f"{i:06d}.jpg" for i in range(1, N_IMAGES + 1)]
ANNOTATIONS = (
    "list_attr_celeba.txt",
    "list_eval_partition.txt",
    "identity_CelebA.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
)


def _fallback_dataset(root: Path, n: int) -> Path:
    """A tiny official-layout dataset, for when smile.data.synthetic is not there."""
    (root / "img_align_celeba").mkdir(parents=True)
    attr, part, ident = [str(n), " ".join(CELEBA_ATTRIBUTES) + " "], [], []
    for i in range(1, n + 1):
        name, rng = f"{i:06d}.jpg", random.Random(i)
        Image.new("RGB", (178, 218), (20 * i % 256, 80, 160)).save(
            root / "img_align_celeba" / name, quality=90
        )
        attr.append(name + "".join(f" {rng.choice((-1, 1)):2d}" for _ in CELEBA_ATTRIBUTES))
        part.append(f"{name} {0 if i <= n - 2 else i - n + 2}")
        ident.append(f"{name} {100 + i % 3}")
    boxes = [str(n), "image_id x_1 y_1 width height", *[f"{i:06d}.jpg 1 2 3 4" for i in range(1, n + 1)]]
    marks = [str(n), "lefteye_x lefteye_y", *[f"{i:06d}.jpg 5 6" for i in range(1, n + 1)]]
    for name, lines in zip(ANNOTATIONS, (attr, part, ident, boxes, marks), strict=True):
        (root / name).write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CelebA in the official layout: the synthetic generator's, or a fallback."""
    root = tmp_path_factory.mktemp("synthetic") / "celeba"
    try:
        from smile.data.synthetic import generate_dataset
    except ImportError:
        return _fallback_dataset(root, N_IMAGES)
    return generate_dataset(root, N_IMAGES, seed=0)


def trainer_reads(root: Path) -> tuple[str, dict[str, int]]:
    """The layout the trainer's reader finds under ``root``, and the size of each split it reads."""
    from smile.data.layouts import detect_layout, read_attributes, read_partition, split_files

    layout = detect_layout(root)
    table = read_attributes(layout.attributes)
    splits = split_files(table, read_partition(layout.partition), layout.partition)
    for name in table.files:
        assert (layout.images / name).is_file()
    return layout.name, {split: len(rows) for split, rows in splits.items()}


def image(dataset: Path, name: str) -> bytes:
    return (dataset / "img_align_celeba" / name).read_bytes()


def official_files(dataset: Path, tag: str = "") -> dict[str, bytes]:
    """The official release's files for ``dataset`` (``tag`` changes the image zip's content)."""
    files = {name: (dataset / name).read_bytes() for name in ANNOTATIONS}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in IMAGE_NAMES:
            zf.writestr(f"img_align_celeba/{name}", image(dataset, name))
        if tag:
            zf.writestr("img_align_celeba/extra.txt", tag)
        # incompressible padding outside the image folder, so that a connection dropped halfway has
        # delivered whole 512 KB chunks to gdown (it keeps only whole chunks)
        zf.writestr("padding.bin", random.Random(0).randbytes(1_200_000), compress_type=zipfile.ZIP_STORED)
    files["img_align_celeba.zip"] = archive.getvalue()
    return files


@pytest.fixture(scope="session")
def files(dataset: Path) -> dict[str, bytes]:
    return official_files(dataset)


QUOTA_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title></head><body>
<p class="uc-error-caption">Sorry, you can't view or download this file at this time.</p>
<p class="uc-error-subcaption">Too many users have viewed or downloaded this file recently. Please try accessing
the file again later.</p></body></html>"""
VIRUS_PAGE = b"""<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>
<p class="uc-warning-subcaption">Google Drive can't scan this file for viruses.</p></body></html>"""
LOGIN_PAGE = b"""<html><head><title>Sign in - Google Accounts</title></head><body>
<form action="https://accounts.google.com/v3/signin/identifier"></form></body></html>"""


class FakeDrive:
    """Serves ``files`` by id at ``/uc?id=...``; ``modes`` turn a file into a failure case."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.modes: dict[str, str] = {}
        self.log: list[tuple[str, str | None]] = []
        drive = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                file_id = parse_qs(urlparse(self.path).query).get("id", [""])[0]
                range_header = self.headers.get("Range")
                drive.log.append((file_id, range_header))
                mode = drive.modes.get(file_id, "ok")
                if file_id not in drive.files or mode.isdigit():
                    self.send_error(int(mode) if mode.isdigit() else 404)
                    return
                body = drive.files[file_id]
                if mode in ("quota", "virus", "login"):
                    page = {"quota": QUOTA_PAGE, "virus": VIRUS_PAGE, "login": LOGIN_PAGE}[mode]
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html; charset=utf-8")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                start = int(range_header.split("=")[1].split("-")[0]) if range_header else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body) - start))
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                self.end_headers()
                cut = len(body) // 2 if mode == "drop" and not start else len(body)  # drop halfway, once
                try:
                    self.wfile.write(body[start:cut])
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):  # the client gave up first
                    pass
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/uc"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    def serve(self, files: dict[str, bytes]) -> tuple[gdrive.RemoteFile, ...]:
        """Serve ``files`` (name -> bytes) and return the file list with their MD5s."""
        remotes = []
        for name, data in files.items():
            file_id = "id-" + name.replace(".", "-")
            self.files[file_id] = data
            remotes.append(gdrive.RemoteFile(file_id, hashlib.md5(data).hexdigest(), name))
        return tuple(remotes)

    def set(self, name: str, data: bytes | None = None, mode: str = "ok") -> None:
        file_id = "id-" + name.replace(".", "-")
        if data is not None:
            self.files[file_id] = data
        self.modes[file_id] = mode


@pytest.fixture
def drive(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, files: dict[str, bytes]):
    pytest.importorskip("gdown")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # gdown's cookie file, Kaggle's config
    monkeypatch.setattr(gdrive, "RETRY_DELAY", 0.0)
    server = FakeDrive()
    server.thread.start()
    monkeypatch.setattr(gdrive, "GDRIVE_FILES", server.serve(files))
    yield server
    server.server.shutdown()
    server.server.server_close()


def run(root: Path, *args: str) -> int:
    return download_main(["--data.root", str(root), "--quiet", *args])


def gdrive_args(drive: FakeDrive) -> list[str]:
    return ["--source", "gdrive", "--gdrive_url", drive.url]


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".part") or p.name.endswith(".zip"))


# --- Google Drive ------------------------------------------------------------------------------------


def test_gdrive_downloads_checks_and_extracts(
    drive: FakeDrive, files: dict, dataset: Path, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "celeba"
    assert run(root, *gdrive_args(drive)) == 0
    assert sorted(p.name for p in (root / "img_align_celeba").iterdir()) == IMAGE_NAMES
    for name in ANNOTATIONS:
        assert (root / name).read_bytes() == files[name]
    assert trainer_reads(root) == trainer_reads(dataset)
    assert leftovers(root) == []  # the zip is deleted after extraction, no partial files
    state = json.loads((root / common.STATE_FILE).read_text())
    assert state["status"] == "complete" and state["source"] == "gdrive" and state["images"] == N_IMAGES
    err = capsys.readouterr().err
    assert "MD5 verified" in err and "Done: CelebA is in" in err
    # a second run sees the complete copy and downloads nothing
    requests_before = len(drive.log)
    assert run(root, *gdrive_args(drive)) == 0
    assert len(drive.log) == requests_before
    assert "already complete" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("quota", 'got Google Drive\'s "quota exceeded" page'),
        ("virus", 'got Google Drive\'s "virus scan warning" page'),
        ("login", "got a Google sign-in page"),
    ],
)
def test_gdrive_html_page_is_recognised(
    drive: FakeDrive, tmp_path: Path, capsys, mode: str, expected: str
) -> None:
    root = tmp_path / "celeba"
    drive.set("img_align_celeba.zip", mode=mode)
    assert run(root, *gdrive_args(drive)) == 1
    err = capsys.readouterr().err
    assert expected in err
    assert "instead of the file" in err
    assert f"Next source to try: python -m smile download --data.root {root} --source huggingface" in err
    assert leftovers(root) == []  # the page is not left under the zip's name
    assert not (root / "img_align_celeba").exists()
    assert (root / "list_attr_celeba.txt").is_file()  # the files that did arrive are kept
    assert json.loads((root / common.STATE_FILE).read_text())["status"] == "in-progress"


@pytest.mark.parametrize(("status", "expected"), [("403", "HTTP 403"), ("404", "HTTP 404")])
def test_gdrive_http_errors(drive: FakeDrive, tmp_path: Path, capsys, status: str, expected: str) -> None:
    drive.set("list_eval_partition.txt", mode=status)
    assert run(tmp_path / "celeba", *gdrive_args(drive)) == 1
    err = capsys.readouterr().err
    assert expected in err and "--source huggingface" in err


def test_gdrive_truncated_file_is_rejected_then_fetched_again(
    drive: FakeDrive, files: dict, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "celeba"
    drive.set("img_align_celeba.zip", files["img_align_celeba.zip"][:-700])
    assert run(root, *gdrive_args(drive)) == 1
    err = capsys.readouterr().err
    assert "MD5 mismatch" in err and "truncated or corrupt" in err
    assert "next run downloads it again" in err
    assert leftovers(root) == [] and not (root / "img_align_celeba").exists()
    drive.set("img_align_celeba.zip", files["img_align_celeba.zip"])
    assert run(root, *gdrive_args(drive)) == 0
    assert len(list((root / "img_align_celeba").iterdir())) == N_IMAGES


def test_gdrive_truncated_text_file(drive: FakeDrive, files: dict, tmp_path: Path, capsys) -> None:
    drive.set("list_attr_celeba.txt", files["list_attr_celeba.txt"][:-30])
    assert run(tmp_path / "celeba", *gdrive_args(drive)) == 1
    assert "it is truncated (it ends in the middle of a line)" in capsys.readouterr().err


def test_gdrive_wrong_md5_is_deleted_and_a_repeat_is_called_out(
    drive: FakeDrive, dataset: Path, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "celeba"
    drive.set("img_align_celeba.zip", official_files(dataset, tag="another version")["img_align_celeba.zip"])
    assert run(root, *gdrive_args(drive)) == 1
    err = capsys.readouterr().err
    assert "MD5 mismatch" in err and "a complete zip archive, but not the expected one" in err
    assert leftovers(root) == []
    assert run(root, *gdrive_args(drive)) == 1
    assert "mismatch number 2" in capsys.readouterr().err


def test_gdrive_dropped_connection_resumes_in_the_same_run(drive: FakeDrive, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    drive.set("img_align_celeba.zip", mode="drop")
    assert run(root, *gdrive_args(drive), "--retries", "1") == 0
    zip_requests = [r for file_id, r in drive.log if file_id == "id-img_align_celeba-zip"]
    assert zip_requests[0] is None and zip_requests[-1].startswith("bytes=")  # the rest only
    assert int(zip_requests[-1][6:-1]) > 0
    assert len(list((root / "img_align_celeba").iterdir())) == N_IMAGES


def test_gdrive_interrupted_run_is_resumed_by_the_next(
    drive: FakeDrive, files: dict, tmp_path: Path, capsys
) -> None:
    root = tmp_path / "celeba"
    drive.set("img_align_celeba.zip", mode="drop")
    assert run(root, *gdrive_args(drive), "--retries", "0") == 1
    err = capsys.readouterr().err
    assert "the next run resumes from there" in err
    partial = [p for p in root.iterdir() if p.name.startswith("img_align_celeba.zip.part")]
    assert len(partial) == 1
    received = partial[0].stat().st_size
    assert 0 < received <= len(files["img_align_celeba.zip"]) // 2
    assert not (root / "img_align_celeba.zip").exists() and not (root / "img_align_celeba").exists()
    assert run(root, *gdrive_args(drive)) == 0
    err = capsys.readouterr().err
    assert "Resuming: an earlier run (gdrive" in err and "resuming img_align_celeba.zip from" in err
    assert f"bytes={received}-" in [r for _, r in drive.log]
    assert leftovers(root) == []


def test_gdrive_extraction_interrupted_is_redone(
    drive: FakeDrive, files: dict, dataset: Path, tmp_path: Path
) -> None:
    root = tmp_path / "celeba"
    root.mkdir()
    (root / "img_align_celeba.zip").write_bytes(files["img_align_celeba.zip"])  # verified earlier
    staging = root / ".img_align_celeba.extracting" / "img_align_celeba"
    staging.mkdir(parents=True)
    (staging / IMAGE_NAMES[0]).write_bytes(b"half-written")
    assert run(root, *gdrive_args(drive)) == 0
    assert (root / "img_align_celeba" / IMAGE_NAMES[0]).read_bytes() == image(dataset, IMAGE_NAMES[0])
    assert not (root / ".img_align_celeba.extracting").exists()


@pytest.mark.parametrize(
    ("source", "module", "package"),
    [
        ("gdrive", "gdown", "gdown"),
        ("huggingface", "huggingface_hub", "huggingface_hub"),
        ("kaggle", "kaggle", "kaggle"),
    ],
)
def test_a_missing_extra_says_what_to_install(
    tmp_path: Path, capsys, monkeypatch, source: str, module: str, package: str
) -> None:
    if source == "huggingface":
        pytest.importorskip("pyarrow")  # checked before huggingface_hub
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` fail
    monkeypatch.setenv("KAGGLE_API_TOKEN", "dummy")  # so that the kaggle source gets as far as importing
    monkeypatch.setattr(gdrive, "GDRIVE_URL", "http://127.0.0.1:9/uc")  # never used: the import fails first
    assert run(tmp_path / "celeba", "--source", source) == 1
    err = capsys.readouterr().err
    assert f"the optional package '{package}' is not installed" in err
    assert "pip install 'smile-faces[download]' (from a clone: pip install '.[download]')" in err


def test_gdrive_page_that_gdown_refuses_is_explained(tmp_path: Path, capsys, monkeypatch) -> None:
    """On the real Drive, gdown itself reads the quota page and raises; the message must say the same."""
    gdown = pytest.importorskip("gdown")
    text = "Too many users have viewed or downloaded this file recently. Please try again later."

    def refuse(**kwargs: object) -> None:
        raise gdown.exceptions.FileURLRetrievalError(f"Failed to retrieve file url:\n\n\t{text}")

    monkeypatch.setattr(gdown, "download", refuse)
    assert run(tmp_path / "celeba", "--source", "gdrive") == 1
    err = capsys.readouterr().err
    assert 'got Google Drive\'s "quota exceeded" page' in err and "(gdown stopped there)" in err
    assert "--source huggingface" in err


def test_html_classification() -> None:
    assert html_pages.looks_like_html(b"\n<!DOCTYPE html><html>") and html_pages.looks_like_html(b"<HTML>")
    assert not html_pages.looks_like_html(b"PK\x03\x04") and not html_pages.looks_like_html(
        b"202599\n5_o_Clock"
    )
    assert html_pages.classify_html(QUOTA_PAGE.decode())[0] == "quota"
    assert html_pages.classify_html(VIRUS_PAGE.decode())[0] == "virus-scan"
    assert html_pages.classify_html(LOGIN_PAGE.decode())[0] == "login"
    assert html_pages.classify_html("Cannot retrieve the public link of the file.")[0] == "no-public-link"
    assert html_pages.classify_html("<html>Error 500</html>")[0] == "html"


# --- Hugging Face --------------------------------------------------------------------------------------


def rows(dataset: Path, name: str, header: int = 0) -> list[list[str]]:
    return [line.split() for line in (dataset / name).read_text().splitlines()[header:]]


def write_mirror(dataset: Path, folder: Path, with_paths: bool = True, png: bool = False) -> list[Path]:
    """``dataset`` as parquet shards in flwrlabs/celeba's schema: image {bytes, path}, celeb_id, 40 bools."""
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    folder.mkdir(parents=True, exist_ok=True)
    labels = {row[0]: row[1:] for row in rows(dataset, "list_attr_celeba.txt", header=2)}
    identity = dict(rows(dataset, "identity_CelebA.txt"))
    split = {name: int(code) for name, code in rows(dataset, "list_eval_partition.txt")}
    train = [name for name in IMAGE_NAMES if split[name] == 0]
    shards = {
        "train-00000-of-00002": train[: len(train) // 2],
        "train-00001-of-00002": train[len(train) // 2 :],
        "valid-00000-of-00001": [name for name in IMAGE_NAMES if split[name] == 1],
        "test-00000-of-00001": [name for name in IMAGE_NAMES if split[name] == 2],
    }
    paths = []
    for shard, names in shards.items():
        images = []
        for name in names:
            data = image(dataset, name)
            if png:
                out = io.BytesIO()
                Image.open(io.BytesIO(data)).save(out, format="PNG")
                data = out.getvalue()
            images.append({"bytes": data, "path": name if with_paths else None})
        columns = {"image": images, "celeb_id": [int(identity[name]) for name in names]}
        for k, attribute in enumerate(CELEBA_ATTRIBUTES):
            columns[attribute] = [labels[name][k] == "1" for name in names]
        path = folder / f"{shard}.parquet"
        pq.write_table(pa.table(columns), path)
        paths.append(path)
    return paths


@pytest.mark.parametrize("with_paths", [True, False])
def test_parquet_conversion_gives_the_official_layout(
    dataset: Path, tmp_path: Path, with_paths: bool
) -> None:
    root = tmp_path / "celeba"
    shards = write_mirror(dataset, tmp_path / "mirror", with_paths=with_paths)
    counts = huggingface.convert_parquet(list(reversed(shards)), root)
    split = [int(code) for _, code in rows(dataset, "list_eval_partition.txt")]
    assert counts == {"train": split.count(0), "valid": split.count(1), "test": split.count(2)}
    for name in ("list_attr_celeba.txt", "list_eval_partition.txt", "identity_CelebA.txt"):
        assert (root / name).read_bytes() == (dataset / name).read_bytes()
    for name in IMAGE_NAMES:  # JPEG bytes are written as they are
        assert (root / "img_align_celeba" / name).read_bytes() == image(dataset, name)
    assert common.find_complete_layout(root).layout == "official"
    assert trainer_reads(root) == trainer_reads(dataset)
    assert not (root / huggingface.STAGING).exists()


def test_parquet_png_images_keep_or_reencode(dataset: Path, tmp_path: Path) -> None:
    shards = write_mirror(dataset, tmp_path / "mirror", png=True)
    huggingface.convert_parquet(shards, tmp_path / "keep")
    assert sorted(p.name for p in (tmp_path / "keep" / "img_align_celeba").iterdir())[0] == "000001.png"
    assert "000001.png" in (tmp_path / "keep" / "list_attr_celeba.txt").read_text()
    assert trainer_reads(tmp_path / "keep") == trainer_reads(dataset)
    huggingface.convert_parquet(shards, tmp_path / "jpg", image_format="jpg")
    first = tmp_path / "jpg" / "img_align_celeba" / "000001.jpg"
    assert first.read_bytes().startswith(b"\xff\xd8\xff")


def test_parquet_conversion_resumes_and_never_looks_complete(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    shards = write_mirror(dataset, tmp_path / "mirror")
    staging = root / huggingface.STAGING / "img_align_celeba"
    staging.mkdir(parents=True)
    (staging / IMAGE_NAMES[1]).write_bytes(b"cut")  # a previous run died while writing this image
    assert common.find_complete_layout(root) is None
    huggingface.convert_parquet(shards, root)
    assert (root / "img_align_celeba" / IMAGE_NAMES[1]).read_bytes() == image(dataset, IMAGE_NAMES[1])


def test_parquet_missing_attribute_columns(dataset: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "train-00000-of-00001.parquet"
    data = image(dataset, IMAGE_NAMES[0])
    pq.write_table(pa.table({"image": [{"bytes": data, "path": None}], "Smiling": [True]}), path)
    with pytest.raises(common.DownloadError, match="lacks 39 attribute column"):
        huggingface.convert_parquet([path], tmp_path / "celeba")


def fake_snapshot(mirror: Path):
    def snapshot(repo: str, revision: str | None, endpoint: str | None, local_dir: Path) -> Path:
        target = local_dir / huggingface.HF_CONFIG
        target.mkdir(parents=True, exist_ok=True)
        for shard in mirror.glob("*.parquet"):
            shutil.copy(shard, target / shard.name)
        return local_dir

    return snapshot


def test_auto_falls_back_from_a_quota_page_to_huggingface(
    drive: FakeDrive, dataset: Path, tmp_path: Path, capsys, monkeypatch
) -> None:
    root = tmp_path / "celeba"
    write_mirror(dataset, tmp_path / "mirror")
    monkeypatch.setattr(huggingface, "snapshot", fake_snapshot(tmp_path / "mirror"))
    drive.set("img_align_celeba.zip", mode="quota")
    assert run(root, "--source", "auto", "--gdrive_url", drive.url) == 0
    err = capsys.readouterr().err
    assert "auto: gdrive did not work; trying huggingface next." in err
    assert "auto: gdrive failed (" in err and "then huggingface succeeded" in err
    assert common.find_complete_layout(root).images == N_IMAGES
    assert not (root / huggingface.PARQUET_CACHE).exists()  # parquet deleted after conversion
    assert json.loads((root / common.STATE_FILE).read_text())["source"] == "huggingface"


# --- Kaggle ------------------------------------------------------------------------------------------


def test_kaggle_without_credentials_prints_the_command(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR", "XDG_CONFIG_HOME"):
        monkeypatch.delenv(name, raising=False)
    root = tmp_path / "celeba"
    assert run(root, "--source", "kaggle") == 1
    err = capsys.readouterr().err
    assert "no Kaggle API credentials found" in err
    assert f"kaggle datasets download -d jessicali9530/celeba-dataset -p {root} --unzip" in err
    assert str(tmp_path / "home" / ".kaggle" / "kaggle.json") in err


def kaggle_zip(dataset: Path) -> bytes:
    """``dataset`` as the Kaggle mirror's archive: CSV files and img_align_celeba/img_align_celeba/."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        for name in IMAGE_NAMES:
            zf.writestr(f"img_align_celeba/img_align_celeba/{name}", image(dataset, name))
        attr = ["image_id," + ",".join(CELEBA_ATTRIBUTES)]
        attr += [",".join(row) for row in rows(dataset, "list_attr_celeba.txt", header=2)]
        zf.writestr("list_attr_celeba.csv", "\n".join(attr) + "\n")
        parts = ["image_id,partition"] + [",".join(row) for row in rows(dataset, "list_eval_partition.txt")]
        zf.writestr("list_eval_partition.csv", "\n".join(parts) + "\n")
    return archive.getvalue()


class FakeKaggleApi:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def dataset_download_files(self, dataset: str, path: str, quiet: bool, unzip: bool) -> None:
        assert dataset == kaggle.KAGGLE_DATASET and not unzip
        (Path(path) / "celeba-dataset.zip").write_bytes(self.data)


def test_kaggle_archive_is_unpacked_in_the_layout_the_trainer_reads(dataset: Path, tmp_path: Path) -> None:
    root = tmp_path / "celeba"
    kaggle.download_kaggle(root, api=FakeKaggleApi(kaggle_zip(dataset)))
    summary = common.find_complete_layout(root)
    assert summary is not None and summary.layout == "kaggle" and summary.images == N_IMAGES
    assert trainer_reads(root) == ("kaggle", trainer_reads(dataset)[1])
    assert not (root / kaggle.STAGING).exists() and not (root / kaggle.EXTRACTING).exists()


def test_kaggle_html_instead_of_zip(tmp_path: Path) -> None:
    page = b"<!DOCTYPE html><html><body>Service unavailable</body></html>"
    with pytest.raises(common.DownloadError, match="is an HTML page .* instead of the file"):
        kaggle.download_kaggle(tmp_path / "celeba", api=FakeKaggleApi(page))
