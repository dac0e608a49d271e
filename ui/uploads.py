"""Checks for articles uploaded through the web chat, before anything touches seeds/."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rag.articles import BULK_SUFFIX, TEXT_SUFFIXES, SkippedInput, parse_jsonl, parse_text_file

_SAFE_NAME = re.compile(r"^[\w\u0600-\u06ff][\w\u0600-\u06ff .()+-]{0,118}$")


class UploadRejected(ValueError):
    """The upload was refused; the message says why. Nothing was written."""


@dataclass
class CheckedUpload:
    name: str
    data: bytes
    articles: int
    replaces: bool


def check_name(name: str) -> str:
    """A plain file name kept inside seeds/: no folders, no '..', no hidden files, a known suffix."""
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise UploadRejected(f"{name!r}: file names may not contain folders")
    if ".." in name or name.startswith("."):
        raise UploadRejected(f"{name!r}: file names may not start with '.' or contain '..'")
    suffix = Path(name).suffix.lower()
    if suffix not in (*TEXT_SUFFIXES, BULK_SUFFIX):
        raise UploadRejected(f"{name}: only .txt, .md and .jsonl articles are accepted")
    if not _SAFE_NAME.match(name):
        raise UploadRejected(f"{name}: use letters, digits, spaces and . _ - ( ) + in file names")
    return name


def check_upload(name: str, data: bytes, seeds_dir: Path, max_bytes: int, replace: bool = False) -> CheckedUpload:
    """Validate one upload: safe name, size, UTF-8 text that parses into at least one article.

    Raises:
        UploadRejected: with a one-line reason; nothing is written.
    """
    name = check_name(name)
    if len(data) > max_bytes:
        raise UploadRejected(f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit")
    try:
        if Path(name).suffix.lower() == BULK_SUFFIX:
            items = list(parse_jsonl(data, name))
            bad = [str(i) for i in items if isinstance(i, SkippedInput)]
            if bad:
                raise UploadRejected(f"{bad[0]} ({len(bad)} bad line(s); fix them and upload again)")
            count = len(items)
        else:
            parse_text_file(data, name)
            count = 1
    except SkippedInput as exc:
        raise UploadRejected(str(exc)) from exc
    target = seeds_dir / name
    exists = target.exists()
    if exists and target.read_bytes() == data:
        raise UploadRejected(f"{name}: the corpus already has this file, unchanged")
    if exists and not replace:
        raise UploadRejected(
            f"{name}: a different file with this name is already in the corpus; tick 'replace' to overwrite it"
        )
    return CheckedUpload(name, data, count, exists)


def write_upload(upload: CheckedUpload, seeds_dir: Path) -> tuple[Path, bytes | None]:
    """Write atomically into seeds/; returns the path and the previous content (for undo)."""
    seeds_dir.mkdir(parents=True, exist_ok=True)
    target = (seeds_dir / upload.name).resolve()
    if target.parent != seeds_dir.resolve():
        raise UploadRejected(f"{upload.name}: would be written outside the seeds folder")
    previous = target.read_bytes() if target.exists() else None
    fd, tmp = tempfile.mkstemp(dir=seeds_dir, prefix=".upload-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(upload.data)
    os.replace(tmp, target)
    return target, previous


def undo_write(target: Path, previous: bytes | None) -> None:
    if previous is None:
        target.unlink(missing_ok=True)
    else:
        target.write_bytes(previous)
