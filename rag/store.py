"""The index folder: SQLite (articles, sentences, chunks, vectors) + a FAISS file + manifest.json.

Crash safety: vectors are cached in SQLite as they are computed (committed per batch, so a killed build
resumes where it stopped); the documents and chunks change in one transaction that also names the new
FAISS file, written before the commit. Until that commit, readers keep seeing the previous state.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from rag.articles import (
    Article,
    content_hash,
    pack_text,
    read_articles,
    remove_leftovers,
    seed_files,
    unpack_text,
)
from rag.chunking import chunk_sentences, max_sentence_chars, split_sentences
from rag.embed import Embedder, batched_by_length, model_fingerprint
from rag.lexical import BM25, bm25_terms
from rag.settings import Settings
from rag.timeq import DateRange
from rag.vectors import (
    VECTOR_ENCODING,
    build_faiss,
    decode_vectors,
    encode_spans,
    encode_vector,
    hnsw_ef_search,
    resolve_kind,
    stored_dim,
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


class IndexError_(RuntimeError):
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


def embed_text(title: str, chunk: str) -> tuple[str, int]:
    """What the model reads for a chunk (title line, then the chunk) and where the chunk starts in it."""
    prefix = f"{title}\n" if title else ""
    return prefix + chunk, len(prefix)


@dataclass
class _PlannedChunk:
    ord: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int
    text: str  # what the model reads
    spans: list[tuple[int, int]]  # sentence spans inside `text`
    embed_hash: str


def plan_chunks(article: Article, settings: Settings, fingerprint: str):
    sentences = split_sentences(article.text, max_sentence_chars(settings))
    planned = []
    for i, ch in enumerate(chunk_sentences(sentences, settings.chunk_chars, settings.chunk_overlap)):
        text, shift = embed_text(article.title, article.text[ch.start : ch.end])
        spans = [
            (sentences[s].start - ch.start + shift, sentences[s].end - ch.start + shift)
            for s in range(ch.first_sentence, ch.last_sentence + 1)
        ]
        planned.append(
            _PlannedChunk(
                i, ch.start, ch.end, ch.first_sentence, ch.last_sentence, text, spans, content_hash(fingerprint, text)
            )
        )
    return sentences, planned


@dataclass
class BuildOptions:
    """How a build runs, beyond the settings (every field has the default a plain `rag index` uses)."""

    rebuild: bool = False  # start from an empty index (needed after changing the model or chunking)
    progress: bool = True  # a progress bar with chunks/s while embedding
    embedder: Embedder | None = None  # an already loaded model to reuse
    on_warning: Callable[[str], None] | None = None  # one line per skipped input (default: logged as warnings)
    yes: bool = False  # index even when seeds/ holds more than RAG_MAX_SEED_FILES files not yet indexed
    # articles not yet in seeds/ (an upload being staged): they replace the articles of the same source files
    pending: Sequence[Article] = ()
    # called after embedding, just before the index commits (an upload moves its files into seeds/ here); if it
    # raises, the index is left as it was
    before_commit: Callable[[], None] | None = None
    # what embeds the chunks with no stored vector (default: the model in this process; `rag.ray_embed.ray_engine`
    # embeds them on a Ray cluster)
    engine: EmbedEngine | None = None


@dataclass
class _Plan:
    """What a build will do: the articles read, which changed or went, and the seed files' stamps."""

    articles: list[Article]
    changed: list[Article]
    removed: list[str]
    stamps: dict[str, tuple[int, int]]
    stats: BuildStats


def build_index(
    seeds_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    options: BuildOptions | None = None,
    **kwargs,
) -> BuildStats:
    """Bring the index at `index_dir` in line with the articles under `seeds_dir`: check, plan, embed, commit.

    New and changed articles are embedded (only chunks whose text is new go through the model); removed
    ones are deleted; unchanged ones are not touched. With nothing to do, the model is not even loaded.
    Every run first checks the index: SQLite's `PRAGMA quick_check`, and that the FAISS file loads and holds
    one vector per chunk; a missing or damaged FAISS file is rebuilt from the stored vectors (no re-embedding).
    A build of at most CARRY_MAX articles derives the next generation's reader caches from the last ones; the
    reader computes them otherwise (`rag.building.build_index` does it at once).

    Args:
        seeds_dir: folder of .txt/.md/.jsonl/.parquet articles (default: settings.seeds_dir).
        index_dir: index folder (default: settings.index_dir); created when missing.
        settings: pipeline settings (default: from the environment).
        options: `BuildOptions`; or its fields as keyword arguments (`progress=False, embedder=...`).

    Returns:
        BuildStats with counts of added / updated / removed / unchanged articles and chunks embedded.

    Raises:
        IndexError_: one line naming the fix (a damaged database, an index path that is a file, a system folder
            as seeds, too many new files without `yes`).
    """
    t0 = time.perf_counter()
    options = options or BuildOptions(**kwargs)
    settings = settings or Settings.from_env()
    seeds = Path(seeds_dir) if seeds_dir is not None else settings.seeds_dir
    index = Path(index_dir) if index_dir is not None else settings.index_dir
    warn = options.on_warning or log.warning
    check_seeds_folder(seeds)
    if leftovers := remove_leftovers(seeds):
        warn(f"removed {leftovers} temporary file(s) an interrupted upload left in {seeds}")
    fingerprint = options.embedder.fingerprint if options.embedder else model_fingerprint(str(settings.model))
    want = expected_meta(settings, fingerprint)
    conn = connect(make_index_folder(index) / DB_NAME)
    carry = None
    try:
        meta = read_meta(conn)
        rebuild = _check(conn, index, meta, want, options.rebuild, warn)
        plan = _plan(conn, seeds, settings, options, rebuild, warn)
        stats = plan.stats
        if not plan.changed and not plan.removed and not rebuild:
            _save_stamps(conn, plan.stamps, transaction=True)
            _repair(conn, index, meta, want, settings, warn)
            if options.before_commit:
                options.before_commit()
            stats.chunks = _count(conn, "chunks")
        else:
            plans = {a.doc_id: plan_chunks(a, settings, fingerprint) for a in plan.changed}
            _embed(conn, plans, settings, options, stats)
            if options.before_commit:
                options.before_commit()
            carry = None if rebuild else _Carry.before_commit(conn, meta, plan.changed, plan.removed)
            terms = carry and carry.terms
            generation = _commit_documents(
                conn, index, plan.changed, plan.removed, plans, want, rebuild, settings, terms, plan.stamps
            )
            stats.chunks = _count(conn, "chunks")
            new_docs = [d for (d,) in conn.execute("SELECT doc_id FROM documents ORDER BY doc_id")] if carry else []
            if rebuild and (conn.execute("PRAGMA page_size").fetchone()[0] != PAGE_SIZE or _mostly_free(conn)):
                compact(conn)
    except sqlite3.DatabaseError as exc:
        raise damaged(index, exc) from exc
    finally:
        conn.close()
    if carry is not None:
        carry.apply(index, new_docs, generation)  # a small build derives the reader caches: cheap
    _drop_old_caches(index)
    stats.seconds = time.perf_counter() - t0
    return stats


def _check(conn, index: Path, meta: dict, want: dict, rebuild: bool, warn: Callable[[str], None]) -> bool:
    """The database's schema and health, and whether this build must start from empty (returned): asked to, or
    the index has an older format (every stored vector is reused); a different model or chunking is refused."""
    conn.executescript(SCHEMA)
    add_missing_columns(conn)
    if meta.get("faiss_file"):
        check_database(conn, index)
    if not rebuild and _only_format_changed(meta, want):
        warn(f"index at {index} has format {meta['format_version']}, now {want['format_version']}: rebuilding it")
        rebuild = True  # same model and chunking, so every stored vector is reused
    if not rebuild:
        check_compatible(meta, want, index)
    if meta.get("format_version") and meta.get("vector_encoding") != VECTOR_ENCODING:
        _convert_vectors(conn)  # an index from before format 5: float32 chunk and float16 sentence vectors
    return rebuild


def _plan(conn, seeds: Path, settings: Settings, options: BuildOptions, rebuild: bool, warn) -> _Plan:
    """Read the seed files that changed since the last build (by size and time) and compare their articles with
    the stored ones: what is new, changed, unchanged or removed."""
    stored_sources = {src for (src,) in conn.execute("SELECT DISTINCT source FROM documents")}
    files = seed_files(seeds)
    new_files = sum(f.relative_to(seeds).as_posix() not in stored_sources for f in files)
    if new_files > settings.max_seed_files and not options.yes:
        raise IndexError_(
            f"{seeds} holds {new_files:,} article files not yet indexed, more than RAG_MAX_SEED_FILES="
            f"{settings.max_seed_files:,}: check the folder, then run `rag index --yes` to index them all"
        )
    stamps = file_stamps(seeds, files)
    replaced = {a.source for a in options.pending}
    kept = {} if rebuild else _unchanged_files(conn, stamps, replaced)  # doc_id -> source, of files not read
    kept_files = set(kept.values())
    articles, skipped = read_articles(seeds, [f for f in files if f.relative_to(seeds).as_posix() not in kept_files])
    if any(a.doc_id in kept for a in articles):  # an article id moved between files: read them all
        kept = {}
        articles, skipped = read_articles(seeds, files)
    for line in skipped:
        warn(f"skipped {line}")
    if options.pending:
        articles = [a for a in articles if a.source not in replaced] + list(options.pending)
    stored = {} if rebuild else dict(conn.execute("SELECT doc_id, content_hash FROM documents"))
    current = {a.doc_id for a in articles}
    changed = [a for a in articles if stored.get(a.doc_id) != a.content_hash]
    removed = [d for d in stored if d not in current and d not in kept]
    stats = BuildStats(skipped=skipped, removed=len(removed))
    stats.added = sum(a.doc_id not in stored for a in changed)
    stats.updated = len(changed) - stats.added
    stats.unchanged = len(articles) - len(changed) + len(kept)
    return _Plan(articles, changed, removed, stamps, stats)


def _repair(conn, index: Path, meta: dict, want: dict, settings: Settings, warn) -> None:
    """With no article to change: a missing or damaged FAISS file, or one of another kind than the settings ask
    for, is written again from the stored vectors, as a new generation."""
    if not faiss_matches(conn, index, meta):
        warn(f"the vector file of the index at {index} is missing or damaged: rebuilt from stored vectors")
        _commit_documents(conn, index, [], [], {}, want, rebuild=False, settings=settings)
    elif not faiss_kind_matches(conn, meta, settings):
        kind = resolve_kind(settings.faiss_index, _count(conn, "chunks"), settings.faiss_auto_above)
        warn(f"building a {kind} FAISS index from the stored vectors (RAG_FAISS_INDEX={settings.faiss_index})")
        _commit_documents(conn, index, [], [], {}, want, rebuild=False, settings=settings)


def _embed(conn, plans: dict, settings: Settings, options: BuildOptions, stats: BuildStats) -> None:
    """Embed the planned chunks whose text has no stored vector: with the options' engine, or the numpy encoder
    for a few (no torch to load), or the model."""
    todo = {p.embed_hash: p for _, planned in plans.values() for p in planned}
    have = _existing_hashes(conn, list(todo))
    missing = [p for h, p in todo.items() if h not in have]
    stats.reused = sum(len(planned) for _, planned in plans.values()) - len(missing)
    if not missing:
        return
    engine, embedder = options.engine, options.embedder
    small = embedder is None and len(missing) <= SMALL_BUILD
    if engine is None and small and (encoder := _numpy_encoder(settings)) is not None:
        engine = local_engine(encoder, settings.batch_size)
        stats.precision = f"numpy fp32 ({len(missing)} chunk(s): quicker than loading torch)"
    elif engine is None:
        embedder = embedder or Embedder(str(settings.model), settings.precision)
        engine = local_engine(embedder, settings.batch_size)
        stats.precision = embedder.precision_line()
    stats.model_loaded = True
    _embed_missing(conn, engine, missing, options.progress)
    stats.embedded = len(missing)


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
    """The FAISS file is of the kind RAG_FAISS_INDEX asks for at this size."""
    built = json.loads(meta.get("faiss_index") or '{"kind": "flat"}').get("kind")
    return built == resolve_kind(settings.faiss_index, _count(conn, "chunks"), settings.faiss_auto_above)


def _existing_hashes(conn: sqlite3.Connection, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(hashes), 500):
        part = hashes[i : i + 500]
        q = f"SELECT embed_hash FROM embeddings WHERE embed_hash IN ({','.join('?' * len(part))})"
        found.update(h for (h,) in conn.execute(q, part))
    return found


EmbeddedRow = tuple[str, bytes, bytes]  # embed_hash, chunk vector, sentence vectors (`rag.vectors` encodings)
EmbedEngine = Callable[[list["_PlannedChunk"]], Iterator[list[EmbeddedRow]]]


SMALL_BUILD = 32  # chunks to embed, at most, for a build to use the numpy encoder instead of loading torch


def _numpy_encoder(settings: Settings):
    """The model's numpy encoder (`rag.query_encoder`), which embeds a few chunks in less time than torch takes to
    import; None for a model folder it does not read."""
    from rag.query_encoder import QueryEncoder, UnsupportedModel

    try:
        return QueryEncoder(settings.model)
    except UnsupportedModel:
        return None


def local_engine(embedder, batch_size: int) -> EmbedEngine:
    """Embedding in this process: batches of similar length through the loaded model (an `Embedder`, or the numpy
    encoder for a small build: anything with `embed_chunks`)."""

    def run(missing: list[_PlannedChunk]) -> Iterator[list[EmbeddedRow]]:
        texts = [p.text for p in missing]
        for idx in batched_by_length(texts, batch_size):
            batch = [missing[i] for i in idx]
            vecs = embedder.embed_chunks([p.text for p in batch], [p.spans for p in batch])
            yield [embedded_row(p.embed_hash, v) for p, v in zip(batch, vecs, strict=True)]

    return run


def embedded_row(embed_hash: str, embedding) -> EmbeddedRow:
    """What the store keeps of one chunk's embedding."""
    return (
        embed_hash,
        encode_vector(embedding.vector),
        encode_spans(embedding.span_vectors),
    )


def _embed_missing(conn, engine: EmbedEngine, missing: list[_PlannedChunk], progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(missing), unit="chunk", desc="embedding", disable=not progress, smoothing=0.1)
    try:
        for rows in engine(missing):
            with conn:  # one small transaction per batch: a killed build keeps what it has embedded
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
            bar.update(len(rows))
    finally:
        bar.close()


SETTLE_NS = 2_000_000_000  # a file changed this recently may change again within its timestamp's resolution


def file_stamps(seeds: Path, files: list[Path]) -> dict[str, tuple[int, int]]:
    """Size and modification time of each seed file, by source; files changed in the last two seconds are left out,
    so they are read again next time (a write in the same clock tick would otherwise go unseen)."""
    now, stamps = time.time_ns(), {}
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        if now - st.st_mtime_ns > SETTLE_NS:
            stamps[f.relative_to(seeds).as_posix()] = (st.st_size, st.st_mtime_ns)
    return stamps


def _unchanged_files(conn, stamps: dict[str, tuple[int, int]], replaced: set[str]) -> dict[str, str]:
    """The stored articles (doc_id -> source) of the seed files whose size and time are as at the last build: these
    files need not be read again (at 20,000 articles, reading and dating them all takes seconds)."""
    same = {
        source
        for source, size, mtime in conn.execute("SELECT source, size, mtime_ns FROM files")
        if stamps.get(source) == (size, mtime) and source not in replaced
    }
    if not same:
        return {}
    return {d: src for d, src in conn.execute("SELECT doc_id, source FROM documents") if src in same}


def _save_stamps(conn, stamps: dict[str, tuple[int, int]], transaction: bool = False) -> None:
    """Record the files this build read (see `_unchanged_files`), in the caller's transaction or in one of its own."""
    if dict((s, (a, b)) for s, a, b in conn.execute("SELECT source, size, mtime_ns FROM files")) == stamps:
        return
    if transaction:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM files")
    conn.executemany("INSERT INTO files VALUES (?, ?, ?)", [(k, *v) for k, v in stamps.items()])
    if transaction:
        conn.execute("COMMIT")


def _drop_old_caches(index: Path) -> None:
    """Remove what readers derived from older generations (see `rag.generation.Generation._cached`)."""
    try:
        generation = str(json.loads((index / MANIFEST).read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return
    for old in index.glob("cache-*"):
        if old.name != f"cache-{generation}":
            shutil.rmtree(old, ignore_errors=True)


CARRY_MAX = 1000  # articles added, changed or removed in one build, at most, for its caches to be derived (`_Carry`)


@dataclass
class _Carry:
    """What a small build changed, so the new generation's reader caches are derived from the previous one's (a
    second or two at 140,000 chunks) instead of computed from every article again (a minute or more)."""

    generation: str  # the previous one
    old_docs: list[str]  # its articles, in BM25 row order
    gone_texts: list[str]  # title and text of the articles removed or replaced
    added_texts: list[str]  # title and text of the new and changed articles
    terms: dict[str, list[str]]  # BM25 terms of the new and changed articles

    @classmethod
    def before_commit(cls, conn, meta: dict, changed: list[Article], removed: list[str]) -> _Carry | None:
        """Read what the commit is about to replace; None when the change is too large to be worth deriving."""
        if len(changed) + len(removed) > CARRY_MAX or not meta.get("generation"):
            return None
        old_docs = [d for (d,) in conn.execute("SELECT doc_id FROM documents ORDER BY doc_id")]
        gone_texts = []
        for doc_id in [*removed, *(a.doc_id for a in changed)]:
            row = conn.execute("SELECT title, text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row:
                gone_texts.append(f"{row[0]} {unpack_text(row[1])}")
        terms = {a.doc_id: bm25_terms(f"{a.title}\n{a.text}") for a in changed}
        added_texts = [f"{a.title} {a.text}" for a in changed]
        return cls(str(meta["generation"]), old_docs, gone_texts, added_texts, terms)

    def apply(self, index: Path, new_docs: list[str], generation: str) -> bool:
        """Write the new generation's caches from the previous one's; False when they cannot be derived (the
        previous caches are missing, damaged or from before term counts were kept)."""
        from rag.crosslingual import NameMatcher

        old, new = cache_dir(index, self.generation), cache_dir(index, generation)
        try:
            bm25 = BM25.updated(old / BM25_CACHE, self.old_docs, new_docs, self.terms)
            names = NameMatcher.load(old / NAMES_CACHE)
            names.update(self.gone_texts, self.added_texts)
            new.mkdir(exist_ok=True)
            names.save(new / NAMES_CACHE)
            bm25.save(new / BM25_CACHE)
        except (OSError, ValueError, KeyError, EOFError, zlib.error):
            return False
        return True


def _commit_documents(
    conn,
    index: Path,
    changed,
    removed,
    plans,
    want,
    rebuild: bool,
    settings: Settings,
    terms: dict | None = None,
    stamps: dict | None = None,
) -> str:
    """Write the changed articles, their chunks and a new FAISS file in one transaction; the new generation."""
    now = datetime.now(UTC).isoformat(timespec="seconds")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rebuild:  # recreate, not just empty: a rebuild may follow a format change
            for table in ("documents", "sentences", "chunks", "files"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        added_at = dict(conn.execute("SELECT doc_id, added_at FROM documents"))
        gone = removed + [a.doc_id for a in changed]
        old_meta = read_meta(conn)
        small = not rebuild and len(gone) <= CARRY_MAX
        gone_ids = (
            [i for d in gone for (i,) in conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (d,))] if small else []
        )
        for table in ("documents", "sentences", "chunks"):
            conn.executemany(f"DELETE FROM {table} WHERE doc_id = ?", [(d,) for d in gone])
        if stamps is not None:
            _save_stamps(conn, stamps)
        for a in changed:
            sentences, planned = plans[a.doc_id]
            conn.execute(
                INSERT_DOCUMENT,
                (
                    a.doc_id,
                    a.title,
                    a.source,
                    a.url,
                    a.date,
                    a.date_source,
                    a.outlet,
                    pack_text(a.text),
                    a.content_hash,
                    added_at.get(a.doc_id, now),
                    len(planned),
                    pack_text(" ".join((terms or {}).get(a.doc_id) or bm25_terms(f"{a.title}\n{a.text}"))),
                ),
            )
            conn.executemany(
                "INSERT INTO sentences VALUES (?, ?, ?, ?)",
                [(a.doc_id, i, s.start, s.end) for i, s in enumerate(sentences)],
            )
            conn.executemany(
                "INSERT INTO chunks (doc_id, ord, start, end, first_sentence, last_sentence, embed_hash) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(a.doc_id, p.ord, p.start, p.end, p.first_sentence, p.last_sentence, p.embed_hash) for p in planned],
            )
        conn.execute("DELETE FROM embeddings WHERE embed_hash NOT IN (SELECT embed_hash FROM chunks)")
        generation = int(old_meta.get("generation", "0")) + 1
        faiss_file = f"vectors-{generation:06d}.faiss"
        new_rows = [
            row
            for a in (changed if small else [])
            for row in conn.execute(
                "SELECT c.id, e.vector FROM chunks c JOIN embeddings e USING (embed_hash) WHERE c.doc_id = ?",
                (a.doc_id,),
            )
        ]
        updated = (
            _update_faiss(conn, index, old_meta, index / faiss_file, gone_ids, new_rows, settings) if small else None
        )
        dim, params = updated or _write_faiss(conn, index / faiss_file, settings)
        meta = {
            **want,
            "generation": str(generation),
            "faiss_file": faiss_file,
            "faiss_index": json.dumps(params),
            "dim": str(dim),
            "built_at": now,
        }
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(meta.items()))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    counts = dict(
        zip(
            ("documents", "chunks"),
            conn.execute("SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)").fetchone(),
            strict=True,
        )
    )
    _atomic_write(index / MANIFEST, json.dumps({**meta, **counts}, indent=2, ensure_ascii=False))
    for old in index.glob("vectors-*.faiss"):  # committed already: a stale file that will not go costs only space
        if old.name != faiss_file:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink(missing_ok=True)
    return str(generation)


def _update_faiss(
    conn: sqlite3.Connection,
    index: Path,
    meta: dict,
    path: Path,
    gone_ids: list[int],
    new_rows: list,
    settings: Settings,
) -> tuple[int, dict] | None:
    """The previous generation's FAISS file with the chunks of removed and replaced articles taken out and the new
    ones added, written to `path` (at 140,000 chunks a fraction of rebuilding it from every stored vector); None
    where it cannot be (no usable previous file, a change of kind, or an HNSW index that would lose vectors)."""
    params = json.loads(meta.get("faiss_index") or "{}")
    kind = params.get("kind", "flat")
    n_after = _count(conn, "chunks")
    if not meta.get("faiss_file") or kind != resolve_kind(settings.faiss_index, n_after, settings.faiss_auto_above):
        return None
    if kind not in ("flat", "hnsw") or (kind == "hnsw" and gone_ids):  # HNSW cannot remove
        return None
    try:
        vectors = faiss.read_index(str(index / meta["faiss_file"]))
    except RuntimeError:
        return None
    if gone_ids:
        vectors.remove_ids(np.asarray(gone_ids, dtype=np.int64))
    if new_rows:
        dim = stored_dim(new_rows[0][1])
        ids = np.array([r[0] for r in new_rows], dtype=np.int64)
        vectors.add_with_ids(np.ascontiguousarray(decode_vectors([r[1] for r in new_rows], dim)), ids)
    if vectors.ntotal != n_after:
        return None
    if kind == "hnsw":
        params["efSearch"] = hnsw_ef_search(n_after)
    _save_faiss(vectors, path)
    return vectors.d, params


def _save_faiss(vectors: faiss.Index, path: Path) -> None:
    tmp = path.with_suffix(".faiss.tmp")
    faiss.write_index(vectors, str(tmp))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _write_faiss(conn: sqlite3.Connection, path: Path, settings: Settings) -> tuple[int, dict]:
    """The FAISS file, built from the stored vectors (the kind chosen by size, `rag.vectors`); dim and parameters."""
    rows = conn.execute("SELECT c.id, e.vector FROM chunks c JOIN embeddings e USING (embed_hash)").fetchall()
    if len(rows) != _count(conn, "chunks"):
        raise IndexError_(f"stored vectors are missing for some chunks of {path.parent}: run `rag index --rebuild`")
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    dim = stored_dim(rows[0][1]) if rows else 0
    vecs = decode_vectors([r[1] for r in rows], dim)
    kind = resolve_kind(settings.faiss_index, len(rows), settings.faiss_auto_above)
    index, params = build_faiss(vecs, ids, kind)
    _save_faiss(index, path)
    return dim, params


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
