"""Checks for articles uploaded through the web chat, and their all-or-nothing move into seeds/.

An upload is checked whole (names, sizes, records, duplicates against the index) and indexed from memory,
before any file is written to seeds/; its files are moved into place just before the index commits.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from rag.articles import (
    BULK_SUFFIX,
    TEXT_SUFFIXES,
    UPLOAD_TEMP_PREFIX,
    Article,
    SkippedInput,
    parse_jsonl,
    parse_text_file,
)

_SAFE_NAME = re.compile(r"^[\w\u0600-\u06ff][\w\u0600-\u06ff .()+-]{0,118}$")


class UploadRejected(ValueError):
    """The upload was refused; the message says why. Nothing was written."""


@dataclass
class CheckedUpload:
    name: str
    data: bytes
    articles: list[Article]
    replaces: bool


@dataclass
class Corpus:
    """What the index holds, as an upload is checked against it: the source file of each content hash."""

    holders: dict[str, str]  # content hash -> source file
    by_source: dict[str, set[str]]  # source file -> content hashes

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> Corpus:
        holders: dict[str, str] = {}
        by_source: dict[str, set[str]] = {}
        for digest, source in pairs:
            holders.setdefault(digest, source)
            by_source.setdefault(source, set()).add(digest)
        return cls(holders, by_source)


def check_name(name: str) -> str:
    """A plain file name kept inside seeds/, NFKC-normalised (so a full-width or compatibility lookalike becomes the
    name it imitates): no folders, no '..', no hidden files, a known suffix."""
    name = unicodedata.normalize("NFKC", name or "")
    if not name or "/" in name or "\\" in name or "\x00" in name or name in (".", ".."):
        raise UploadRejected(f"{name!r}: file names may not contain folders")
    hidden = next((c for c in name if unicodedata.category(c) in ("Cf", "Cc", "Co", "Cs", "Cn")), None)
    if hidden is not None:  # U+061C, U+0600-0605, U+06DD, bidi overrides: a name that looks like another
        raise UploadRejected(
            f"{name!r}: file names may not hold invisible format or direction characters (U+{ord(hidden):04X})"
        )
    if ".." in name or name.startswith("."):
        raise UploadRejected(f"{name!r}: file names may not start with '.' or contain '..'")
    suffix = Path(name).suffix.lower()
    if suffix not in (*TEXT_SUFFIXES, BULK_SUFFIX):
        raise UploadRejected(f"{name}: only .txt, .md and .jsonl articles are accepted")
    if not _SAFE_NAME.match(name):
        raise UploadRejected(f"{name}: use letters, digits, spaces and . _ - ( ) + in file names")
    return name


def parse_upload(name: str, data: bytes) -> list[Article]:
    """The articles of one uploaded file; any bad record refuses the whole file, naming its line."""
    try:
        if Path(name).suffix.lower() != BULK_SUFFIX:
            return [parse_text_file(data, name)]
        items = list(parse_jsonl(data, name))
    except SkippedInput as exc:
        raise UploadRejected(str(exc)) from exc
    bad = [str(i) for i in items if isinstance(i, SkippedInput)]
    if bad:
        raise UploadRejected(f"{bad[0]} ({len(bad)} bad line(s); fix them and upload again)")
    articles = [i for i in items if isinstance(i, Article)]
    first: dict[str, str] = {}
    for a in articles:
        if a.content_hash in first:
            raise UploadRejected(f"{name}: records {first[a.content_hash]!r} and {a.doc_id!r} hold the same article")
        first[a.content_hash] = a.doc_id
    return articles


def check_upload(
    name: str,
    data: bytes,
    seeds_dir: Path,
    max_bytes: int,
    replace: bool = False,
    corpus: Corpus | None = None,
    max_articles: int | None = None,
) -> CheckedUpload:
    """Validate one upload: safe name, size, UTF-8 text that parses into articles, and nothing the corpus has.

    "Already has this file" means the index holds exactly this file's articles under this name; an article the
    index holds under another name is refused as a duplicate, naming that file.

    Raises:
        UploadRejected: with a one-line reason; nothing is written.
    """
    corpus = corpus or Corpus({}, {})
    name = check_name(name)
    if len(data) > max_bytes:
        raise UploadRejected(f"{name}: {len(data):,} bytes is over the {max_bytes:,}-byte limit")
    articles = parse_upload(name, data)
    if max_articles is not None and len(articles) > max_articles:
        raise UploadRejected(
            f"{name}: {len(articles):,} articles is over the {max_articles:,}-article limit of one upload; split it"
        )
    target = seeds_dir / name
    if target.is_symlink():
        raise UploadRejected(f"{name}: a symbolic link of that name is in the seeds folder; remove it first")
    indexed = corpus.by_source.get(name, set())
    if target.exists() and indexed == {a.content_hash for a in articles}:
        raise UploadRejected(f"{name}: the corpus already has this file, unchanged")
    for a in articles:
        holder = corpus.holders.get(a.content_hash)
        if holder is not None and holder != name:
            raise UploadRejected(f"{name}: {_label(a)} is already in the corpus as {holder}")
    exists = target.exists() or bool(indexed)
    same_file = target.exists() and target.read_bytes() == data  # in seeds/ but not indexed: a build was cut short
    if exists and not replace and not same_file:
        raise UploadRejected(
            f"{name}: a different file with this name is already in the corpus; tick 'replace' to overwrite it"
        )
    return CheckedUpload(name, data, articles, exists)


def _label(article: Article) -> str:
    return f"the article of record {article.doc_id.split('#', 1)[1]!r}" if "#" in article.doc_id else "this article"


def write_uploads(uploads: list[CheckedUpload], seeds_dir: Path) -> list[tuple[Path, bytes | None]]:
    """Move checked uploads into seeds/, each by an atomic rename; all or none (on failure the ones written are
    undone). Returns each path with its previous content, for `undo_writes`."""
    seeds_dir.mkdir(parents=True, exist_ok=True)
    done: list[tuple[Path, bytes | None]] = []
    try:
        for upload in uploads:
            target = seeds_dir.resolve() / upload.name
            if target.is_symlink() or target.resolve().parent != seeds_dir.resolve():
                raise UploadRejected(f"{upload.name}: would be written outside the seeds folder")
            previous = target.read_bytes() if target.exists() else None
            fd, tmp = tempfile.mkstemp(dir=seeds_dir, prefix=UPLOAD_TEMP_PREFIX)
            os.fchmod(fd, new_file_mode())  # mkstemp makes it 0600; an article is as readable as the rest of seeds/
            with os.fdopen(fd, "wb") as fh:
                fh.write(upload.data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            done.append((target, previous))
    except BaseException:
        undo_writes(done)
        raise
    return done


def new_file_mode() -> int:
    """The mode a plain new file gets from this process's umask (0644 under the usual 022), read without changing
    the umask (os.umask would, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            umask = next(int(line.split()[1], 8) for line in fh if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = 0o022
    return 0o666 & ~umask


def undo_writes(written: list[tuple[Path, bytes | None]]) -> None:
    """Put back what `write_uploads` replaced, and remove what it added."""
    for target, previous in reversed(written):
        if previous is None:
            target.unlink(missing_ok=True)
        else:
            target.write_bytes(previous)
