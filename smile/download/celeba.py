"""Get CelebA into the layout the trainer reads, from whichever source works (``smile download``)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from smile.download.common import (
    SOURCES,
    DownloadError,
    MissingExtraError,
    find_complete_layout,
    now,
    read_state,
    run_health_scan,
    say,
    verify_layout,
    write_state,
)


def run_source(source: str, args: argparse.Namespace) -> None:
    """Run one source; raises :class:`DownloadError` with a message for the user when it fails."""
    root: Path = args.root
    if source == "gdrive":
        from smile.download.gdrive import download_gdrive

        download_gdrive(
            root,
            base_url=args.gdrive_url,
            retries=args.retries,
            keep_archive=args.keep_archives,
            quiet=args.quiet,
        )
    elif source == "huggingface":
        from smile.download.huggingface import HF_REPO, download_huggingface

        download_huggingface(
            root,
            repo=args.hf_repo or HF_REPO,
            revision=args.hf_revision,
            endpoint=args.hf_endpoint or os.environ.get("HF_ENDPOINT") or None,
            image_format=args.image_format,
            keep_archive=args.keep_archives,
        )
    elif source == "kaggle":
        from smile.download.kaggle import download_kaggle

        download_kaggle(root, keep_archive=args.keep_archives)
    else:
        raise ValueError(f"unknown source {source!r}")


def _first_sentence(message: str) -> str:
    """The gist of a source's error message: its first sentence, without the source's name."""
    text = message.split(": ", 1)[-1].splitlines()[0]
    return text.split(". ")[0].rstrip(".")


def download(args: argparse.Namespace) -> int:
    """Get CelebA into ``args.root`` from ``args.source`` (``auto``: each source in turn), as ``smile
    download`` was asked to; returns the exit status (0 when CelebA is complete)."""
    root: Path = args.root
    existing = find_complete_layout(root)
    if existing is not None:
        state = read_state(root)
        origin = f" (downloaded from {state['source']})" if state.get("status") == "complete" else ""
        say(
            f"CelebA is already complete under {root}{origin}: {existing.layout} layout, "
            f"{existing.images:,} images. Nothing to download."
        )
        run_health_scan(root)
        return 0
    state = read_state(root)
    if state.get("status") == "in-progress":
        say(
            f"Resuming: an earlier run ({state.get('source')}, started {state.get('started')}) stopped before "
            "the end; files it completed are kept, partial ones are resumed."
        )
    sources = SOURCES if args.source == "auto" else (args.source,)
    failures: list[tuple[str, str]] = []
    for position, source in enumerate(sources):
        write_state(root, status="in-progress", source=source, started=state.get("started") or now())
        try:
            run_source(source, args)
            summary = verify_layout(root)
        except KeyboardInterrupt:
            say(f"Interrupted. Partial files are kept under {root}; run the same command again to resume.")
            return 130
        except DownloadError as err:
            failures.append((source, str(err)))
            skipped = isinstance(err, MissingExtraError) and len(sources) > 1
            say(f"{'skipped' if skipped else 'error'}: {err}")
            if position + 1 < len(sources):
                say(f"auto: {source} did not work; trying {sources[position + 1]} next.")
            continue
        write_state(
            root,
            status="complete",
            source=source,
            finished=now(),
            layout=summary.layout,
            images=summary.images,
        )
        if failures:
            tried = "; ".join(f"{name} failed ({_first_sentence(message)})" for name, message in failures)
            say(f"auto: {tried}; then {source} succeeded.")
        say(f"Done: CelebA is in {root} ({summary.layout} layout, {summary.images:,} images, from {source}).")
        return 0
    if len(failures) > 1:
        say(
            "auto: every source failed:\n"
            + "\n".join(f"  {name}: {message.splitlines()[0]}" for name, message in failures)
        )
    return 1
