"""The index folder: SQLite (articles, sentences, chunks, vectors) + a FAISS file + manifest.json, its schema and
format, opening it (read-write or read-only), checking it, and the one-line errors that name the fix. Building it is
`rag.indexer`; committing a generation, `rag.commit`; reading one, `rag.generation`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from rag.settings import Settings, UserError
from rag.timeq import DateRange
from rag.vectors import (
    VECTOR_ENCODING,
    encode_spans,
    encode_vector,
    params_current,
    resolve_kind,
)

log = logging.getLogger(__name__)

FORMAT_VERSION = 5  # 2: BM25 terms per article (was per chunk); 3: plus character 3-grams; 4: long sentences cut;
# 5: int8 vectors (rag.vectors.VECTOR_ENCODING), text and BM25 terms zlib-compressed, exact FAISS in fp16
DB_NAME = "rag.sqlite"
MANIFEST = "manifest.json"
_BUILD_KEYS = ("model_hash", "chunk_chars", "chunk_overlap")  # what the stored vectors depend on

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT, date TEXT,
    text BLOB NOT NULL, content_hash TEXT NOT NULL, added_at TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    terms BLOB NOT NULL, date_source TEXT, outlet TEXT);
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL, ord INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    PRIMARY KEY (doc_id, ord)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, ord INTEGER NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL, first_sentence INTEGER NOT NULL, last_sentence INTEGER NOT NULL,
    embed_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE TABLE IF NOT EXISTS files (source TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
"""
DOCUMENT_COLUMNS = (
    *("doc_id", "title", "source", "url", "date", "date_source", "outlet"),
    *("text", "content_hash", "added_at", "n_chunks", "terms"),
)
INSERT_DOCUMENT = (
    f"INSERT INTO documents ({', '.join(DOCUMENT_COLUMNS)}) VALUES ({', '.join('?' * len(DOCUMENT_COLUMNS))})"
)
ADDED_COLUMNS = {"date_source": "TEXT", "outlet": "TEXT"}  # columns an index from before them gets on its next build


def corpus_dates(index_dir: str | Path) -> DateRange:
    """The first and last dated article of the index at `index_dir`, and how many have no date."""
    conn = connect_readonly(Path(index_dir) / DB_NAME)
    try:
        return DateRange.of([d for (d,) in conn.execute("SELECT date FROM documents")])
    finally:
        conn.close()


def add_missing_columns(conn: sqlite3.Connection) -> None:
    """Bring an older index's documents table up to this schema (the new columns start empty)."""
    have = {row[1] for row in conn.execute("PRAGMA table_info(documents)")}
    for name, kind in ADDED_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE documents ADD COLUMN {name} {kind}")


SCHEMA_EMBEDDINGS = """CREATE TABLE IF NOT EXISTS embeddings (
    embed_hash TEXT PRIMARY KEY, vector BLOB NOT NULL, spans BLOB NOT NULL) WITHOUT ROWID"""
SCHEMA += SCHEMA_EMBEDDINGS + ";\n"
# Article text and BM25 terms are zlib-compressed (`rag.articles.pack_text`): about a third and a fifth of the bytes.


class IndexError_(UserError):
    """A problem with the index a user can fix; the message names the fix."""


class IndexMissing(IndexError_, FileNotFoundError):
    pass


class IndexMismatch(IndexError_):
    pass


@dataclass
class BuildStats:
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    chunks: int = 0  # chunks in the index after the build
    embedded: int = 0  # chunks that went through the model in this build
    reused: int = 0  # chunks of new or changed articles whose vectors were already stored
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0
    model_loaded: bool = False
    precision: str = ""  # the model's precision and why, when this build loaded it (`Calibration.line`)

    def summary(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, removed {self.removed}, unchanged {self.unchanged}; "
            f"{self.chunks} chunks ({self.embedded} embedded, {self.reused} reused); "
            f"{len(self.skipped)} skipped; {self.seconds:.1f}s"
        )


# Folders that are never a seeds folder: indexing them would read the whole system.
SYSTEM_DIRS = frozenset(
    Path(p)
    for p in (
        "/",
        "/bin",
        "/boot",
        "/dev",
        "/etc",
        "/home",
        "/lib",
        "/lib64",
        "/opt",
        "/proc",
        "/root",
        "/run",
        "/sbin",
        "/srv",
        "/sys",
        "/tmp",
        "/usr",
        "/var",
    )
)


PAGE_SIZE = 16384  # an embeddings row (about 3 KB) fits in one page; with 4 KB pages it spills into overflow pages


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection for building: WAL journal (readers keep their snapshot while a build writes); a new database
    gets PAGE_SIZE pages (an existing one keeps its own until `rag index --rebuild` compacts it)."""
    try:
        new = not db_path.exists()
        conn = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
        if new:
            conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.Error as exc:
        raise damaged(db_path.parent, exc) from exc
    return conn


def connect_readonly(db_path: Path) -> sqlite3.Connection:
    """A connection for queries that never writes, so a read-only index folder can be queried.

    SQLite needs to create the WAL's shared-memory file next to the database; where the folder cannot be
    written it is opened as immutable (it cannot change while nobody can write it).
    """
    uri = db_path.resolve().as_uri()
    for mode in ("?mode=ro", "?mode=ro&immutable=1"):
        try:
            conn = sqlite3.connect(uri + mode, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("SELECT COUNT(*) FROM meta").fetchone()
            return conn
        except sqlite3.OperationalError as exc:
            if "unable to open" not in str(exc) and "readonly" not in str(exc):
                raise damaged(db_path.parent, exc) from exc
        except sqlite3.DatabaseError as exc:
            raise damaged(db_path.parent, exc) from exc
    raise IndexError_(f"cannot read the index database {db_path}: check its permissions")


def damaged(index_dir: Path, exc: BaseException | str) -> IndexError_:
    """The one-line error for an index whose database cannot be read (or is busy)."""
    if "locked" in str(exc):
        return IndexError_(f"the index at {index_dir} is busy (another build is writing it): try again when it ends")
    detail = " ".join(str(exc).split())[:200]  # one line, whatever SQLite or zlib said
    return IndexError_(
        f"the index database at {index_dir} is damaged or unreadable ({detail}): `rag index` cannot repair it; "
        f"move the folder away (mv {index_dir} {index_dir}.damaged) and run `rag index` to build it again"
    )


def read_faiss(path: Path, index_dir: Path) -> faiss.Index:
    """The FAISS file of an index, or a one-line error naming the repair (which needs no re-embedding)."""
    if not path.is_file():
        raise IndexError_(
            f"the vector file {path.name} of the index at {index_dir} is missing: run `rag index` to repair it"
        )
    try:
        return faiss.read_index(str(path))
    except RuntimeError as exc:
        raise IndexError_(
            f"the vector file {path.name} of the index at {index_dir} is damaged: run `rag index` to repair it"
        ) from exc


def read_meta(conn: sqlite3.Connection) -> dict[str, str]:
    try:
        return dict(conn.execute("SELECT key, value FROM meta"))
    except sqlite3.OperationalError:
        return {}


def expected_meta(settings: Settings, fingerprint: str) -> dict[str, str]:
    return {
        "format_version": str(FORMAT_VERSION),
        "model": str(settings.model),
        "model_hash": fingerprint,
        "chunk_chars": str(settings.chunk_chars),
        "chunk_overlap": str(settings.chunk_overlap),
        "vector_encoding": VECTOR_ENCODING,
    }


def check_compatible(meta: dict[str, str], want: dict[str, str], index_dir: Path) -> None:
    """Refuse an index built with another format, model or chunking."""
    if _only_format_changed(meta, want):
        raise IndexMismatch(
            f"index at {index_dir} has format {meta['format_version']}, now {want['format_version']}: run `rag index` "
            "to convert it (stored vectors are reused, nothing is re-embedded)"
        )
    for key in ("format_version", *_BUILD_KEYS):
        if key in meta and meta[key] != want[key]:
            raise IndexMismatch(
                f"index at {index_dir} was built with {key}={meta[key]}, now {want[key]}: "
                "rebuild it with `rag index --rebuild`"
            )


def _only_format_changed(meta: dict[str, str], want: dict[str, str]) -> bool:
    old = meta.get("format_version")
    return old is not None and old != want["format_version"] and all(meta.get(k) == want[k] for k in _BUILD_KEYS)


BM25_CACHE, NAMES_CACHE = "bm25", "names.json.gz"  # what a generation's cache folder holds


def cache_dir(index_dir: Path, generation: str) -> Path:
    """Where readers keep what they derive from one generation of the index (`rag.generation.Generation._cached`)."""
    return index_dir / f"cache-{generation}"


def is_warm(index_dir: Path, generation: str) -> bool:
    """Every cache of this generation is written."""
    folder = cache_dir(index_dir, generation)
    return (folder / BM25_CACHE).is_dir() and (folder / NAMES_CACHE).is_file()


def check_seeds_folder(seeds: Path) -> None:
    """Refuse a seeds folder that is missing, a file, or a system folder such as / or /etc."""
    if seeds.resolve() in SYSTEM_DIRS:
        raise IndexError_(f"{seeds} is a system folder, not a folder of articles: point --seeds (RAG_SEEDS_DIR) at one")
    if seeds.exists() and not seeds.is_dir():
        raise IndexError_(f"{seeds} is a file: point --seeds (RAG_SEEDS_DIR) at a folder of articles")


def make_index_folder(index: Path) -> Path:
    """Create the index folder, or raise one line saying why it cannot be."""
    if index.exists() and not index.is_dir():
        raise IndexError_(f"{index} is a file, not an index folder: point --index (RAG_INDEX_DIR) at a folder")
    try:
        index.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexError_(f"cannot create the index folder {index} ({exc.strerror}): choose another --index") from exc
    if not os.access(index, os.W_OK):
        raise IndexError_(f"the index folder {index} is not writable: fix its permissions or choose another --index")
    return index


def check_database(conn: sqlite3.Connection, index: Path) -> None:
    """SQLite's own consistency check; a damaged database is named, not half-used."""
    result = [r[0] for r in conn.execute("PRAGMA quick_check").fetchall()]
    if result != ["ok"]:
        raise damaged(index, f"quick_check: {result[0]}")


def faiss_matches(conn: sqlite3.Connection, index: Path, meta: dict[str, str]) -> bool:
    """The FAISS file named by the index loads and holds one vector per chunk."""
    path = index / meta.get("faiss_file", "-")
    if not meta.get("faiss_file") or not path.is_file():
        return False
    try:
        stored = faiss.read_index(str(path)).ntotal
    except RuntimeError:
        return False
    return stored == _count(conn, "chunks")


def compact(conn: sqlite3.Connection) -> bool:
    """Rewrite the database with PAGE_SIZE pages (VACUUM; the WAL journal has to step aside for it). Skipped, and
    False, while another process has the index open: it changes only the size on disk."""
    try:
        conn.execute("PRAGMA journal_mode=DELETE")
        conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
        conn.execute("VACUUM")
        return True
    except sqlite3.OperationalError:
        return False
    finally:
        with contextlib.suppress(sqlite3.OperationalError):
            conn.execute("PRAGMA journal_mode=WAL")


def _convert_vectors(conn: sqlite3.Connection, batch: int = 2000) -> None:
    """Re-encode the stored vectors of an index from before format 5 (float32 chunk vectors, float16 sentence
    vectors, a rowid table) as `rag.vectors.VECTOR_ENCODING` in a WITHOUT ROWID table, in one transaction that also
    records the encoding, so a killed run leaves them all old or all new. It runs once the build is sure to go on
    (after the compatibility and too-many-files checks)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DROP TABLE IF EXISTS embeddings_new")
        conn.execute(SCHEMA_EMBEDDINGS.replace("embeddings", "embeddings_new"))
        last = ""
        while rows := conn.execute(
            "SELECT embed_hash, vector, spans FROM embeddings WHERE embed_hash > ? ORDER BY embed_hash LIMIT ?",
            (last, batch),
        ).fetchall():
            conn.executemany(
                "INSERT INTO embeddings_new VALUES (?, ?, ?)",
                [
                    (
                        h,
                        encode_vector(np.frombuffer(v, dtype=np.float32)),
                        encode_spans(np.frombuffer(sp, dtype=np.float16).reshape(-1, len(v) // 4)),
                    )
                    for h, v, sp in rows
                ],
            )
            last = rows[-1][0]
        conn.execute("DROP TABLE embeddings")
        conn.execute("ALTER TABLE embeddings_new RENAME TO embeddings")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('vector_encoding', ?)", (VECTOR_ENCODING,))
        # Until the rebuild that follows commits format 5, the index is neither format: older code refuses it, and
        # this code rebuilds it (`_only_format_changed`) without converting again.
        conn.execute("UPDATE meta SET value = ? WHERE key = 'format_version'", (f"{FORMAT_VERSION}-converting",))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _mostly_free(conn: sqlite3.Connection) -> bool:
    """A quarter or more of the database file is free pages (after a rebuild, or the vectors' conversion)."""
    free, total = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("freelist_count", "page_count"))
    return free * 4 >= total


def _count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def faiss_kind_matches(conn: sqlite3.Connection, meta: dict[str, str], settings: Settings) -> bool:
    """The FAISS file is of the kind RAG_FAISS_INDEX asks for at this size, built as `build_faiss` builds it now."""
    built = json.loads(meta.get("faiss_index") or '{"kind": "flat"}')
    return params_current(built, resolve_kind(settings.faiss_index, _count(conn, "chunks"), settings.faiss_auto_above))
