"""A build's commit: the documents, sentences and chunks of one generation changed in one transaction that also
names its new FAISS file (written first, atomically), and the reader caches a small build derives from the last
generation's (`Carry`). Until the commit, readers keep seeing the previous generation."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import sqlite3
import time
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np

from rag.articles import (
    Article,
    pack_text,
    unpack_text,
)
from rag.lexical import BM25, bm25_terms
from rag.settings import Settings
from rag.store import (
    BM25_CACHE,
    INSERT_DOCUMENT,
    MANIFEST,
    NAMES_CACHE,
    SCHEMA,
    IndexError_,
    _count,
    cache_dir,
    read_meta,
)
from rag.vectors import (
    build_faiss,
    decode_vectors,
    hnsw_ef_search,
    params_current,
    resolve_kind,
    stored_dim,
)

log = logging.getLogger(__name__)


def drop_old_caches(index: Path) -> None:
    """Remove what readers derived from older generations (see `rag.generation.Generation._cached`)."""
    try:
        generation = str(json.loads((index / MANIFEST).read_text())["generation"])
    except (OSError, ValueError, KeyError):
        return
    for old in index.glob("cache-*"):
        if old.name != f"cache-{generation}":
            shutil.rmtree(old, ignore_errors=True)


CARRY_MAX = 1000  # articles added, changed or removed in one build, at most, for its caches to be derived (`Carry`)


@dataclass
class Carry:
    """What a small build changed, so the new generation's reader caches are derived from the previous one's (a
    second or two at 140,000 chunks) instead of computed from every article again (a minute or more)."""

    generation: str  # the previous one
    old_docs: list[str]  # its articles, in BM25 row order
    gone_texts: list[str]  # title and text of the articles removed or replaced
    added_texts: list[str]  # title and text of the new and changed articles
    terms: dict[str, list[str]]  # BM25 terms of the new and changed articles

    @classmethod
    def before_commit(cls, conn, meta: dict, changed: list[Article], removed: list[str]) -> Carry | None:
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
        from rag.spelling import NameMatcher

        old, new = cache_dir(index, self.generation), cache_dir(index, generation)
        try:
            bm25 = BM25.updated(old / BM25_CACHE, self.old_docs, new_docs, self.terms)
            new.mkdir(exist_ok=True)
            NameMatcher.save_derived(old / NAMES_CACHE, new / NAMES_CACHE, self.gone_texts, self.added_texts)
            bm25.save(new / BM25_CACHE)
        except (OSError, ValueError, KeyError, EOFError, zlib.error):
            return False
        return True


def commit_documents(
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
        small = not rebuild and len(gone) <= CARRY_MAX  # few articles: the FAISS file is updated, not rewritten
        gone_rows = [
            r for d in gone if small for r in conn.execute("SELECT id, embed_hash FROM chunks WHERE doc_id = ?", (d,))
        ]
        for table in ("documents", "sentences", "chunks"):
            conn.executemany(f"DELETE FROM {table} WHERE doc_id = ?", [(d,) for d in gone])
        if stamps is not None:
            save_stamps(conn, stamps)
        for a in changed:
            _insert_article(conn, a, plans[a.doc_id], (terms or {}).get(a.doc_id), added_at.get(a.doc_id, now))
        _drop_unused_vectors(conn, {h for _, h in gone_rows} if small else None)
        generation = int(old_meta.get("generation", "0")) + 1
        faiss_file = f"vectors-{generation:06d}.faiss"
        path = index / faiss_file
        updated = (
            _update_faiss(conn, index, old_meta, path, [i for i, _ in gone_rows], _vector_rows(conn, changed), settings)
            if small
            else None
        )
        dim, params = updated or _write_faiss(conn, path, settings)
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
    _publish(conn, index, meta)
    return str(generation)


def _drop_unused_vectors(conn: sqlite3.Connection, candidates: set[str] | None) -> None:
    """Delete the stored vectors no chunk uses any more: of `candidates` (the chunks a small build replaced), or of
    the whole table (None). Scanning the whole table costs about 0.6 s at 140,000 chunks, so a small build leaves
    the vectors an interrupted build stored (a resumed build reuses them) to the next large one."""
    if candidates is None:
        conn.execute("DELETE FROM embeddings WHERE embed_hash NOT IN (SELECT embed_hash FROM chunks)")
        return
    todo = sorted(candidates)
    for start in range(0, len(todo), 500):
        part = todo[start : start + 500]
        marks = ",".join("?" * len(part))
        used = {h for (h,) in conn.execute(f"SELECT embed_hash FROM chunks WHERE embed_hash IN ({marks})", part)}
        conn.executemany("DELETE FROM embeddings WHERE embed_hash = ?", [(h,) for h in part if h not in used])


def _insert_article(conn: sqlite3.Connection, a, plan, terms: list[str] | None, added_at: str) -> None:
    """One article's row, its sentences and its chunks (`plan`: the sentences and planned chunks)."""
    sentences, planned = plan
    packed_terms = pack_text(" ".join(terms or bm25_terms(f"{a.title}\n{a.text}")))
    row = (a.doc_id, a.title, a.source, a.url, a.date, a.date_source, a.outlet, pack_text(a.text), a.content_hash)
    conn.execute(INSERT_DOCUMENT, (*row, added_at, len(planned), packed_terms))
    conn.executemany(
        "INSERT INTO sentences VALUES (?, ?, ?, ?)", [(a.doc_id, i, s.start, s.end) for i, s in enumerate(sentences)]
    )
    conn.executemany(
        "INSERT INTO chunks (doc_id, ord, start, end, first_sentence, last_sentence, embed_hash) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(a.doc_id, p.ord, p.start, p.end, p.first_sentence, p.last_sentence, p.embed_hash) for p in planned],
    )


def _vector_rows(conn: sqlite3.Connection, changed) -> list:
    """(chunk id, stored vector) of every chunk of the changed articles, just inserted."""
    return [
        row
        for a in changed
        for row in conn.execute(
            "SELECT c.id, e.vector FROM chunks c JOIN embeddings e USING (embed_hash) WHERE c.doc_id = ?", (a.doc_id,)
        )
    ]


def _publish(conn: sqlite3.Connection, index: Path, meta: dict) -> None:
    """After the commit: the manifest (meta and counts), and the older FAISS files removed."""
    counts = dict(
        zip(
            ("documents", "chunks"),
            conn.execute("SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM chunks)").fetchone(),
            strict=True,
        )
    )
    _atomic_write(index / MANIFEST, json.dumps({**meta, **counts}, indent=2, ensure_ascii=False))
    for old in index.glob("vectors-*.faiss"):  # committed already: a stale file that will not go costs only space
        if old.name != meta["faiss_file"]:
            if old.is_dir() and not old.is_symlink():
                shutil.rmtree(old, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    old.unlink(missing_ok=True)


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
    want = resolve_kind(settings.faiss_index, n_after, settings.faiss_auto_above)
    if not meta.get("faiss_file") or not params_current(params, want):
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


def unchanged_files(conn, stamps: dict[str, tuple[int, int]], replaced: set[str]) -> dict[str, str]:
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


def save_stamps(conn, stamps: dict[str, tuple[int, int]], transaction: bool = False) -> None:
    """Record the files this build read (see `_unchanged_files`), in the caller's transaction or in one of its own."""
    if dict((s, (a, b)) for s, a, b in conn.execute("SELECT source, size, mtime_ns FROM files")) == stamps:
        return
    if transaction:
        conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM files")
    conn.executemany("INSERT INTO files VALUES (?, ?, ?)", [(k, *v) for k, v in stamps.items()])
    if transaction:
        conn.execute("COMMIT")
