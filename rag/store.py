"""The index folder: SQLite (articles, sentences, chunks, vectors) + a FAISS file + manifest.json.

Crash safety: vectors are cached in SQLite as they are computed (committed per batch, so a killed build
resumes where it stopped); the documents and chunks change in one transaction that also names the new
FAISS file, written before the commit. Until that commit, readers keep seeing the previous state.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from rag.articles import Article, content_hash, read_articles
from rag.chunking import chunk_sentences, split_sentences
from rag.embed import Embedder, batched_by_length, model_fingerprint
from rag.lexical import bm25_terms
from rag.settings import Settings

log = logging.getLogger(__name__)

FORMAT_VERSION = 3  # 2: BM25 terms per article (was per chunk); 3: plus character 3-grams
DB_NAME = "rag.sqlite"
MANIFEST = "manifest.json"
_BUILD_KEYS = ("model_hash", "chunk_chars", "chunk_overlap")  # what the stored vectors depend on

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, source TEXT NOT NULL, url TEXT, date TEXT,
    text TEXT NOT NULL, content_hash TEXT NOT NULL, added_at TEXT NOT NULL, n_chunks INTEGER NOT NULL,
    terms TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL, ord INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
    PRIMARY KEY (doc_id, ord));
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY, doc_id TEXT NOT NULL, ord INTEGER NOT NULL, start INTEGER NOT NULL,
    end INTEGER NOT NULL, first_sentence INTEGER NOT NULL, last_sentence INTEGER NOT NULL,
    embed_hash TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks (doc_id);
CREATE TABLE IF NOT EXISTS embeddings (embed_hash TEXT PRIMARY KEY, vector BLOB NOT NULL, spans BLOB NOT NULL);
"""


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

    def summary(self) -> str:
        return (
            f"added {self.added}, updated {self.updated}, removed {self.removed}, unchanged {self.unchanged}; "
            f"{self.chunks} chunks ({self.embedded} embedded, {self.reused} reused); "
            f"{len(self.skipped)} skipped; {self.seconds:.1f}s"
        )


def connect(db_path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(db_path, timeout=30, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


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
    }


def check_compatible(meta: dict[str, str], want: dict[str, str], index_dir: Path) -> None:
    """Refuse an index built with another format, model or chunking."""
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
    sentences = split_sentences(article.text)
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


def build_index(
    seeds_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    rebuild: bool = False,
    settings: Settings | None = None,
    progress: bool = True,
    embedder: Embedder | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> BuildStats:
    """Bring the index at `index_dir` in line with the articles under `seeds_dir`.

    New and changed articles are embedded (only chunks whose text is new go through the model); removed
    ones are deleted; unchanged ones are not touched. With nothing to do, the model is not even loaded.

    Args:
        seeds_dir: folder of .txt/.md/.jsonl articles (default: settings.seeds_dir).
        index_dir: index folder (default: settings.index_dir); created when missing.
        rebuild: start from an empty index (needed after changing the model or chunking).
        settings: pipeline settings (default: from the environment).
        progress: show a progress bar with chunks/s while embedding.
        embedder: an already loaded model to reuse.
        on_warning: called with one line per skipped input (default: logged as warnings).

    Returns:
        BuildStats with counts of added / updated / removed / unchanged articles and chunks embedded.
    """
    t0 = time.perf_counter()
    settings = settings or Settings.from_env()
    seeds = Path(seeds_dir) if seeds_dir is not None else settings.seeds_dir
    index = Path(index_dir) if index_dir is not None else settings.index_dir
    warn = on_warning or log.warning
    articles, skipped = read_articles(seeds)
    for line in skipped:
        warn(f"skipped {line}")
    stats = BuildStats(skipped=skipped)

    fingerprint = embedder.fingerprint if embedder else model_fingerprint(str(settings.model))
    want = expected_meta(settings, fingerprint)
    index.mkdir(parents=True, exist_ok=True)
    conn = connect(index / DB_NAME)
    try:
        conn.executescript(SCHEMA)
        meta = read_meta(conn)
        if not rebuild and _only_format_changed(meta, want):
            warn(f"index at {index} has format {meta['format_version']}, now {want['format_version']}: rebuilding it")
            rebuild = True  # same model and chunking, so every stored vector is reused
        if not rebuild:
            check_compatible(meta, want, index)
        stored = {} if rebuild else dict(conn.execute("SELECT doc_id, content_hash FROM documents"))
        current = {a.doc_id: a for a in articles}
        changed = [a for a in articles if stored.get(a.doc_id) != a.content_hash]
        removed = [d for d in stored if d not in current]
        stats.added = sum(a.doc_id not in stored for a in changed)
        stats.updated = len(changed) - stats.added
        stats.removed = len(removed)
        stats.unchanged = len(articles) - len(changed)
        faiss_ok = bool(meta.get("faiss_file")) and (index / meta["faiss_file"]).exists()
        if not changed and not removed and not rebuild and faiss_ok:
            stats.chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
            stats.seconds = time.perf_counter() - t0
            return stats

        plans = {a.doc_id: plan_chunks(a, settings, fingerprint) for a in changed}
        todo = {p.embed_hash: p for _, planned in plans.values() for p in planned}
        have = _existing_hashes(conn, list(todo))
        missing = [p for h, p in todo.items() if h not in have]
        stats.reused = sum(len(planned) for _, planned in plans.values()) - len(missing)
        if missing:
            embedder = embedder or Embedder(str(settings.model), settings.precision)
            stats.model_loaded = True
            _embed_missing(conn, embedder, missing, settings.batch_size, progress)
            stats.embedded = len(missing)
        _commit_documents(conn, index, changed, removed, plans, want, rebuild)
        stats.chunks = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    finally:
        conn.close()
    stats.seconds = time.perf_counter() - t0
    return stats


def _existing_hashes(conn: sqlite3.Connection, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(hashes), 500):
        part = hashes[i : i + 500]
        q = f"SELECT embed_hash FROM embeddings WHERE embed_hash IN ({','.join('?' * len(part))})"
        found.update(h for (h,) in conn.execute(q, part))
    return found


def _embed_missing(conn, embedder: Embedder, missing: list[_PlannedChunk], batch_size: int, progress: bool):
    from tqdm import tqdm

    texts = [p.text for p in missing]
    bar = tqdm(total=len(missing), unit="chunk", desc="embedding", disable=not progress, smoothing=0.1)
    try:
        for idx in batched_by_length(texts, batch_size):
            batch = [missing[i] for i in idx]
            vecs = embedder.embed_chunks([p.text for p in batch], [p.spans for p in batch])
            rows = [
                (p.embed_hash, v.vector.astype(np.float32).tobytes(), v.span_vectors.astype(np.float16).tobytes())
                for p, v in zip(batch, vecs, strict=True)
            ]
            with conn:  # one small transaction per batch: a killed build keeps what it has embedded
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
            bar.update(len(batch))
    finally:
        bar.close()


def _commit_documents(conn, index: Path, changed, removed, plans, want, rebuild: bool) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    conn.execute("BEGIN IMMEDIATE")
    try:
        if rebuild:  # recreate, not just empty: a rebuild may follow a format change
            for table in ("documents", "sentences", "chunks"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        added_at = dict(conn.execute("SELECT doc_id, added_at FROM documents"))
        gone = removed + [a.doc_id for a in changed]
        for table in ("documents", "sentences", "chunks"):
            conn.executemany(f"DELETE FROM {table} WHERE doc_id = ?", [(d,) for d in gone])
        for a in changed:
            sentences, planned = plans[a.doc_id]
            conn.execute(
                "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    a.doc_id,
                    a.title,
                    a.source,
                    a.url,
                    a.date,
                    a.text,
                    a.content_hash,
                    added_at.get(a.doc_id, now),
                    len(planned),
                    " ".join(bm25_terms(f"{a.title}\n{a.text}")),
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
        generation = int(read_meta(conn).get("generation", "0")) + 1
        faiss_file = f"vectors-{generation:06d}.faiss"
        dim = _write_faiss(conn, index / faiss_file)
        meta = {**want, "generation": str(generation), "faiss_file": faiss_file, "dim": str(dim), "built_at": now}
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
    for old in index.glob("vectors-*.faiss"):
        if old.name != faiss_file:
            old.unlink(missing_ok=True)


def _write_faiss(conn: sqlite3.Connection, path: Path) -> int:
    rows = conn.execute("SELECT c.id, e.vector FROM chunks c JOIN embeddings e USING (embed_hash)").fetchall()
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
    dim = vecs.shape[1] if len(rows) else 0
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(max(dim, 1)))
    if len(rows):
        index.add_with_ids(vecs, ids)
    tmp = path.with_suffix(".faiss.tmp")
    faiss.write_index(index, str(tmp))
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return dim


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
