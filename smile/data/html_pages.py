"""Recognise an HTML page saved in place of data (what a failed download leaves: Google Drive's quota,
virus-scan and sign-in pages), and say what it is. Used by the download sources and by the data check."""

from __future__ import annotations

from pathlib import Path

HTML_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    # kind: (what it is, for the user; lower-case keywords that identify it); the first match wins
    "quota": (
        'Google Drive\'s "quota exceeded" page (too many users have downloaded this file in the last 24 hours; '
        "it usually clears within a day)",
        ("quota exceeded", "too many users have viewed or downloaded this file recently"),
    ),
    "virus-scan": (
        'Google Drive\'s "virus scan warning" page (the file is too big for Drive to scan, and the confirmation '
        "could not be followed; pip install -U gdown may help)",
        ("virus scan warning", "can't scan this file for viruses", "can&#39;t scan this file for viruses"),
    ),
    "login": (
        "a Google sign-in page (the link needs a login, or it has expired or been restricted)",
        ("accounts.google.com", "servicelogin", "sign in - google accounts", "<title>sign in"),
    ),
    "no-public-link": (
        'Google Drive\'s "cannot retrieve the public link" answer (the file needs a login or permission, or '
        "has had too many accesses)",
        ("cannot retrieve the public link of the file",),
    ),
}
GENERIC_HTML = "an HTML page (an error or interstitial page of the server)"


def looks_like_html(head: bytes) -> bool:
    """True if ``head`` (the first bytes of a file) is an HTML page rather than data."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return text.startswith((b"<!doctype html", b"<html", b"<head", b"<meta", b"<!--")) or (
        text.startswith(b"<") and b"<html" in text[:4096]
    )


def classify_html(text: str) -> tuple[str, str]:
    """Kind and explanation of a Google page (quota, virus-scan, login, ...) from its text."""
    lowered = text.lower()
    for kind, (meaning, keywords) in HTML_KINDS.items():
        if any(keyword in lowered for keyword in keywords):
            return kind, meaning
    return "html", GENERIC_HTML


def sniff_html(path: Path) -> tuple[str, str] | None:
    """If the file at ``path`` is an HTML page, its kind and explanation; else None."""
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    if not looks_like_html(head):
        return None
    return classify_html(head.decode("utf-8", errors="replace"))
