"""The Kaggle mirror (jessicali9530/celeba-dataset) through the Kaggle API; the trainer reads its layout as is."""

from __future__ import annotations

import os
from pathlib import Path

from smile.download.common import (
    DownloadError,
    check_zip,
    extract_zip,
    next_source_hint,
    remove,
    require,
    say,
)

KAGGLE_DATASET = "jessicali9530/celeba-dataset"
STAGING = ".kaggle-download"
EXTRACTING = ".kaggle-extracting"
#: What the Kaggle archive holds, besides the image folder (``img_align_celeba/img_align_celeba/*.jpg``).
KAGGLE_FILES = (
    "list_attr_celeba.csv",
    "list_eval_partition.csv",
    "list_bbox_celeba.csv",
    "list_landmarks_align_celeba.csv",
)


def _config_dirs() -> list[Path]:
    if os.environ.get("KAGGLE_CONFIG_DIR"):
        return [Path(os.environ["KAGGLE_CONFIG_DIR"]).expanduser()]
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return [Path.home() / ".kaggle", xdg / "kaggle"]


def find_credentials() -> str | None:
    """Where the Kaggle client would find credentials (without importing it), or None."""
    if os.environ.get("KAGGLE_API_TOKEN"):
        return "KAGGLE_API_TOKEN"
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return "KAGGLE_USERNAME/KAGGLE_KEY"
    for folder in _config_dirs():
        for name in ("kaggle.json", "access_token", "access_token.txt", "credentials.json"):
            if (folder / name).is_file():
                return str(folder / name)
    return None


def no_credentials_message(root: Path) -> str:
    folder = _config_dirs()[0]
    return (
        "kaggle: no Kaggle API credentials found (looked for KAGGLE_API_TOKEN, KAGGLE_USERNAME + KAGGLE_KEY, "
        f"and kaggle.json / access_token in {folder}).\n"
        "  To use the Kaggle mirror:\n"
        "  1. Sign in at https://www.kaggle.com, open Settings > API and create a token.\n"
        "  2. Put it where the Kaggle client looks, either\n"
        f"       the token file:  {folder / 'access_token'}   (or: export KAGGLE_API_TOKEN=<token>)\n"
        f"       or a legacy key: {folder / 'kaggle.json'}   "
        f'({{"username": "...", "key": "..."}}; chmod 600 {folder / "kaggle.json"})\n'
        f"  3. Run again:  python -m smile download --data.root {root} --source kaggle\n"
        f"     or by hand: kaggle datasets download -d {KAGGLE_DATASET} -p {root} --unzip\n"
        "     (the trainer reads the Kaggle layout as it is: no conversion needed)"
    )


def _api() -> object:
    """An authenticated KaggleApi (imported only here: importing ``kaggle`` itself tries to log in)."""
    require("kaggle.api.kaggle_api_extended", "kaggle", "kaggle")
    from kaggle.api.kaggle_api_extended import KaggleApi  # type: ignore[import-not-found]

    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit as err:  # the client prints its own help and exits when the credentials are refused
        raise DownloadError(f"kaggle: the Kaggle API refused the credentials (exit {err.code})") from err
    return api


def install_archive(archive_path: Path, root: Path, keep_archive: bool = False) -> None:
    """Extract the Kaggle zip into a staging folder and move its files into ``root``, the image folder last."""
    images = root / "img_align_celeba"
    staging = root / EXTRACTING
    with check_zip(archive_path, "kaggle", root) as archive:
        extract_zip(archive, staging, desc=f"Extracting {archive_path.name}")
    if not (staging / "img_align_celeba" / "img_align_celeba").is_dir():
        raise DownloadError(
            f"kaggle: {archive_path.name} has no img_align_celeba/img_align_celeba/ folder; "
            f"it is not {KAGGLE_DATASET}"
        )
    for name in KAGGLE_FILES:
        if (staging / name).is_file():
            os.replace(staging / name, root / name)
    os.replace(staging / "img_align_celeba", images)
    remove(staging)
    if not keep_archive:
        remove(archive_path)


def download_kaggle(
    root: Path, dataset: str = KAGGLE_DATASET, keep_archive: bool = False, api: object | None = None
) -> None:
    """Download the Kaggle archive (the client resumes it) and unpack it into ``root``."""
    images = root / "img_align_celeba"
    if images.exists():
        raise DownloadError(
            f"kaggle: {images} already exists (from another download); unpacking the Kaggle archive would mix "
            f"two copies. Move it away or choose another --data.root. {next_source_hint('kaggle', root)}"
        )
    if api is None:
        where = find_credentials()
        if where is None:
            raise DownloadError(no_credentials_message(root))
        say(f"kaggle: using the credentials in {where}")
        api = _api()
    staging = root / STAGING
    staging.mkdir(parents=True, exist_ok=True)
    say(f"kaggle: downloading {dataset} into {staging}")
    try:
        api.dataset_download_files(dataset, path=str(staging), quiet=False, unzip=False)  # type: ignore[attr-defined]
    except Exception as err:
        raise DownloadError(
            f"kaggle: downloading {dataset} failed ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})."
            f" What was received is kept in {staging} and the next run resumes it. {next_source_hint('kaggle', root)}"
        ) from err
    archives = sorted(staging.glob("*.zip"))
    if not archives:
        raise DownloadError(f"kaggle: the Kaggle client finished but left no zip archive in {staging}")
    install_archive(archives[0], root, keep_archive)
    if keep_archive:
        os.replace(archives[0], root / archives[0].name)
    remove(staging)
