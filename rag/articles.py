"""Read articles from a seeds folder (.txt / .md files, bulk .jsonl) and clean away page furniture."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import re
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from rag.dates import article_date, front_matter

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt", ".md")
BULK_SUFFIX = ".jsonl"
PARQUET_SUFFIX = ".parquet"  # bulk shards for large archives (read with pyarrow, the `scale` extra)

# Site footers that news scrapers leave on the last line. Kept here, in one place; matched after
# whitespace is collapsed, alone on a line or after a tracking blob.
KNOWN_FOOTERS = (
    "جزيرة ام اند امز",
    "العين الإخبارية",
    "اقرأ أيضا",
    "اقرأ أيضاً",
    "شارك هذا المقال",
    "Read more",
    "Share this article",
)

MAX_LINE_CHARS = 2_000_000  # a .jsonl line longer than this is refused before parsing
MAX_NESTING = 20  # an article record is flat; deeper JSON is refused before parsing
_FIELDS = ("id", "title", "text", "url", "date", "source")

_B64_TOKEN = re.compile(r"^[A-Za-z0-9+/_-]{16,}={0,2}$")
_URL_TOKEN = re.compile(r"^(https?://|www\.)\S+$", re.IGNORECASE)


@dataclass(frozen=True)
class Article:
    """One cleaned article. `text` is the body that citation offsets point into."""

    doc_id: str
    title: str
    text: str
    source: str  # file path relative to the seeds folder
    content_hash: str
    url: str = ""
    date: str = ""  # YYYY-MM-DD (or the record's own date and time); "" when unknown
    date_source: str = ""  # where the date came from: record, front-matter, file-name, dateline ("" when unknown)
    outlet: str = ""  # the record's `source` (the newspaper), front matter's `outlet`, or the file's folder or name


class SkippedInput(Exception):
    """An input that cannot be indexed; the message names it and says why."""


def is_blob(token: str) -> bool:
    """True for a URL or a base64-looking tracking token (long, mixed, and decodable)."""
    if _URL_TOKEN.match(token):
        return True
    if not _B64_TOKEN.match(token):
        return False
    kinds = sum(bool(re.search(p, token)) for p in ("[a-z]", "[A-Z]", "[0-9]"))
    if kinds < 2:
        return False
    padded = token.replace("-", "+").replace("_", "/")
    padded += "=" * (-len(padded) % 4)
    try:
        base64.b64decode(padded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def is_furniture(line: str) -> bool:
    """A line that carries no article content: blobs, URLs, and known footers (alone or after a blob)."""
    words = line.split()
    if not words:
        return False
    rest = words
    while rest and is_blob(rest[0]):
        rest = rest[1:]
    remainder = " ".join(rest)
    if not remainder:
        return True  # only blobs
    return remainder in KNOWN_FOOTERS


def clean_text(raw: str) -> str:
    """Normalise line ends and drop furniture lines; every sentence of the article is kept as written."""
    raw = raw.replace("\ufeff", "").replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.rstrip() for line in raw.split("\n")]
    kept = [line for line in lines if not is_furniture(line)]
    return "\n".join(kept).strip("\n ")


def split_title(raw: str) -> tuple[str, str]:
    """First non-empty line is the title, the rest the body."""
    lines = raw.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, line in enumerate(lines):
        if line.strip():
            return line.strip(), "\n".join(lines[i + 1 :])
    return "", ""


def content_hash(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


def pack_text(text: str) -> bytes:
    """Text as the index stores it (article text, BM25 terms): UTF-8, zlib-compressed."""
    return zlib.compress(text.encode("utf-8"), 6)


def unpack_text(packed: bytes) -> str:
    """What `pack_text` stored."""
    return zlib.decompress(packed).decode("utf-8")


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 text, or SkippedInput saying why not (binary, not UTF-8, empty)."""
    if not data.strip():
        raise SkippedInput(f"{name}: empty file")
    if b"\x00" in data:
        raise SkippedInput(f"{name}: binary file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SkippedInput(f"{name}: not UTF-8 text (byte {exc.start})") from exc


def make_article(
    doc_id: str,
    title: str,
    body: str,
    source: str,
    url: str = "",
    date: str = "",
    outlet: str = "",
    meta: dict | None = None,
) -> Article:
    """A cleaned article; its date is resolved from `date` (a record's), front matter `meta`, the file name and a
    dateline in the text (`rag.dates.article_date`)."""
    text = clean_text(body)
    title = " ".join(title.split())
    if not text:
        raise SkippedInput(f"{source}: no article body after the title")
    day, where = article_date(date, meta or {}, source, text)
    # what the article says, not what its file is called: the same article under two names hashes the same
    named = where == "file-name"
    digest = content_hash(title, text, url, "" if named else day, "" if named else where, outlet)
    return Article(doc_id, title, text, source, digest, url, day, where, outlet or default_outlet(source))


def default_outlet(source: str) -> str:
    """An article's outlet when its record names none: its folder under seeds/, else its file name."""
    parts = source.split("/")
    return parts[-2] if len(parts) > 1 else parts[-1]


def parse_text_file(data: bytes, source: str) -> Article:
    """A .txt/.md article: optional YAML front matter (date, outlet, url, title), then the title line and the body."""
    meta, text = front_matter(decode_text(data, source))
    title, body = split_title(text)
    title = str(meta["title"]) if isinstance(meta.get("title"), str) and meta["title"].strip() else title
    url = meta.get("url") if isinstance(meta.get("url"), str) else ""
    outlet = meta.get("outlet") if isinstance(meta.get("outlet"), str) else ""
    return make_article(source, title, body, source, url, "", outlet, meta)


def _nesting(line: str) -> int:
    """How deep the brackets of a JSON line go (brackets inside strings counted too: an upper bound)."""
    if line.count("[") + line.count("{") <= MAX_NESTING:
        return 0  # cannot be deeper than the bound; skip the scan
    depth = deepest = 0
    for ch in line:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def read_record(line: str) -> tuple[str, str, str, str, str, str]:
    """id, title, text, url, date and source of one .jsonl line; ValueError saying what is wrong with it."""
    if len(line) > MAX_LINE_CHARS:
        raise ValueError(f"line of {len(line):,} characters is over the {MAX_LINE_CHARS:,} bound")
    if _nesting(line) > MAX_NESTING:
        raise ValueError(f"JSON nested deeper than {MAX_NESTING} levels")
    return record_fields(json.loads(line))


def record_fields(rec: object) -> tuple[str, str, str, str, str, str]:
    """id, title, text, url, date and source (the outlet) of one bulk record (a JSON line, a Parquet row);
    ValueError if it is not one."""
    if not isinstance(rec, dict):
        raise ValueError("not a JSON object")
    for key in ("id", "text"):
        if key not in rec:
            raise ValueError(f'no "{key}" field')
    values = []
    for key in _FIELDS:
        value = rec.get(key)
        if value is None and key not in ("id", "text"):
            value = ""
        if not isinstance(value, str):
            raise ValueError(f'"{key}" must be a string, not {type(value).__name__}')
        values.append(value)
    if not values[0].strip():
        raise ValueError('empty "id"')
    return tuple(values)  # type: ignore[return-value]


def parse_jsonl(data: bytes, source: str) -> Iterator[Article | SkippedInput]:
    """Articles of a bulk file, one JSON object a line: "id", "title", "text", optional "url" and "date", all strings.

    A line that is not such a record, or repeats an id of an earlier line, is yielded as SkippedInput naming its line.
    """
    text = decode_text(data, source)

    def records() -> Iterator[tuple[int, Callable[[], tuple]]]:
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip():
                yield lineno, lambda line=line: read_record(line)

    return _bulk_articles(records(), source)


def parse_parquet(path: Path, source: str) -> Iterator[Article | SkippedInput]:
    """Articles of a Parquet shard with the .jsonl record's columns (needs pyarrow: the `scale` extra)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise SkippedInput(f"{source}: Parquet needs pyarrow: `pip install -e '.[scale]'`") from exc
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise SkippedInput(f"{source}: not a readable Parquet file ({str(exc).splitlines()[0][:100]})") from exc
    rows = table.to_pylist()
    return _bulk_articles(((i, lambda r=r: record_fields(r)) for i, r in enumerate(rows, 1)), source)


def _bulk_articles(records: Iterator[tuple[int, Callable[[], tuple]]], source: str) -> Iterator[Article | SkippedInput]:
    """Articles of numbered records; a bad record or a repeated id is a SkippedInput naming its line (row)."""
    first_line: dict[str, int] = {}
    for lineno, read in records:
        where = f"{source}:{lineno}"
        try:
            rid, title, body, url, date, outlet = read()
        except (ValueError, RecursionError) as exc:
            yield SkippedInput(f"{where}: not an article record ({exc})")
            continue
        if rid in first_line:
            yield SkippedInput(f"{where}: duplicate id {rid!r} (first on line {first_line[rid]})")
            continue
        first_line[rid] = lineno
        try:
            yield make_article(f"{source}#{rid}", title, body, source, url, date, outlet)
        except SkippedInput as exc:
            yield SkippedInput(f"{where}: {exc}")


UPLOAD_TEMP_PREFIX = ".upload-"  # an upload's file on its way into seeds/: hidden, so never read as an article


def remove_leftovers(seeds_dir: Path, min_age: float = 60.0) -> int:
    """Delete the temporary files an interrupted upload left in seeds/ (older than `min_age` seconds, so a live
    upload's file is never taken); returns how many."""
    if not seeds_dir.is_dir():
        return 0
    removed = 0
    for path in seeds_dir.glob(f"{UPLOAD_TEMP_PREFIX}*"):
        try:
            if path.is_file() and time.time() - path.stat().st_mtime >= min_age:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


def seed_files(seeds_dir: Path) -> list[Path]:
    """Article files under `seeds_dir`, searched recursively, in a stable order (hidden files ignored)."""
    suffixes = (*TEXT_SUFFIXES, BULK_SUFFIX, PARQUET_SUFFIX)
    return sorted(
        p
        for p in seeds_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in suffixes
        and not any(part.startswith(".") for part in p.relative_to(seeds_dir).parts)
    )


def read_articles(seeds_dir: str | Path, files: list[Path] | None = None) -> tuple[list[Article], list[str]]:
    """All readable articles under `seeds_dir` (or in `files`, as listed by `seed_files`), and one warning line per
    input that was skipped.

    Raises:
        FileNotFoundError: when `seeds_dir` does not exist.
    """
    seeds_dir = Path(seeds_dir)
    if not seeds_dir.is_dir():
        raise FileNotFoundError(
            f"no seeds folder at {seeds_dir}: create it and put .txt/.md/.jsonl (or .parquet) articles in it"
        )
    articles: dict[str, Article] = {}
    warnings: list[str] = []
    root = seeds_dir.resolve()
    for path in seed_files(seeds_dir) if files is None else files:
        source = path.relative_to(seeds_dir).as_posix()
        if path.is_symlink() or not path.resolve().is_relative_to(root):  # never read what lies outside seeds/
            warnings.append(f"{source}: a symbolic link (or a path outside the seeds folder), skipped")
            continue
        try:
            suffix = path.suffix.lower()
            if suffix == PARQUET_SUFFIX:
                items = parse_parquet(path, source)
            else:
                data = path.read_bytes()
                items = parse_jsonl(data, source) if suffix == BULK_SUFFIX else [parse_text_file(data, source)]
            for item in items:
                if isinstance(item, SkippedInput):
                    warnings.append(str(item))
                elif item.doc_id in articles:
                    warnings.append(f"{source}: duplicate article id {item.doc_id}, later copy skipped")
                else:
                    articles[item.doc_id] = item
        except SkippedInput as exc:
            warnings.append(str(exc))
        except OSError as exc:
            warnings.append(f"{source}: unreadable ({exc.strerror})")
    return list(articles.values()), warnings
