"""One generation of a built index, loaded for reading: FAISS vectors, the chunk table as arrays, article texts and
dates from SQLite, BM25; reloaded when a build commits a newer generation. What readers derive from a generation is
kept beside it (`_cached`) and in bounded in-memory caches, reset with each generation."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import zlib
from array import array
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rag.articles import unpack_text
from rag.embed import Embedder, model_fingerprint
from rag.lexical import BM25
from rag.query_encoder import QueryEncoder, UnsupportedModel
from rag.reader import Reader, load_reader
from rag.settings import Settings
from rag.store import (
    BM25_CACHE,
    DB_NAME,
    IndexError_,
    IndexMissing,
    cache_dir,
    check_compatible,
    connect_readonly,
    damaged,
    expected_meta,
    read_faiss,
    read_meta,
)
from rag.timeq import DateRange, DocFilter, parse_date
from rag.vectors import decode_spans, set_search_params


class ChunkRef(NamedTuple):
    """Where one chunk lies in its article, with its sentence range (the chunk table's row)."""

    chunk_id: int
    doc_id: str
    start: int
    end: int
    first_sentence: int
    last_sentence: int


@dataclass
class Chunk:
    """One chunk of an article as readers see it: its ids, where it lies, its article's title and outlet, and its
    text. A retrieved chunk (`rag.retrieve.Hit`) and a chunk given to an LLM (`rag.llm.Passage`) are chunks with
    their own fields added; an evidence sentence (`rag.answering.Evidence`) names the chunk it was read in."""

    chunk_id: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str


class Generation:
    """A loaded index generation. Reloads itself (`refresh`) when a build commits a new one, so a running chat sees
    new articles at once."""

    def __init__(
        self, index_dir: str | Path | None = None, settings: Settings | None = None, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.index_dir = Path(index_dir) if index_dir is not None else self.settings.index_dir
        if not (self.index_dir / DB_NAME).is_file():
            raise IndexMissing(f"no index at {self.index_dir}: run `make index` (or `rag index`)")
        self._embedder = embedder
        self._queries: QueryEncoder | Embedder | None = None
        self._reader: Reader | bool | None = False  # False: not looked for yet
        self.lock = threading.RLock()  # also held by a caller that must read one generation across several calls
        self.generation = ""
        self._load()

    # -- loading -------------------------------------------------------------------------------------
    def _load(self) -> None:
        conn = connect_readonly(self.index_dir / DB_NAME)
        try:
            self._read(conn)
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise damaged(self.index_dir, exc) from exc
        except BaseException:
            conn.close()
            raise

    def _read(self, conn: sqlite3.Connection) -> None:
        meta = read_meta(conn)
        if not meta.get("faiss_file"):
            raise IndexMissing(f"index at {self.index_dir} is incomplete: run `make index` (or `rag index`)")
        fingerprint = self._embedder.fingerprint if self._embedder else model_fingerprint(str(self.settings.model))
        check_compatible(meta, expected_meta(self.settings, fingerprint), self.index_dir)
        vectors = read_faiss(self.index_dir / meta["faiss_file"], self.index_dir)
        set_search_params(vectors, meta.get("faiss_index"))
        cursor = conn.execute("SELECT id, doc_id, start, end, first_sentence, last_sentence FROM chunks ORDER BY id")
        ids, chunk_docs, bounds = array("q"), [], array("q")
        while batch := cursor.fetchmany(65536):  # numbers into arrays as they come: no million tuples at once
            for cid, doc, start, end, first, last in batch:
                ids.append(cid)
                chunk_docs.append(doc)
                bounds.extend((start, end, first, last))
        if vectors.ntotal != len(ids):
            raise IndexError_(
                f"the vector file of the index at {self.index_dir} does not match its database: "
                "run `rag index` to repair it"
            )
        cols = {r[1] for r in conn.execute("PRAGMA table_info(documents)")}
        outlet = "outlet" if "outlet" in cols else "''"  # an index from before outlets answers until rebuilt
        docs = conn.execute(
            f"SELECT doc_id, title, source, url, date, {outlet} FROM documents ORDER BY doc_id"
        ).fetchall()
        self.conn = conn
        self.meta = meta
        self.vectors = vectors
        # The chunk table as numpy arrays, by row (chunk ids ascending): at a million chunks, lists of tuples and a
        # dict from id to row would take about half a gigabyte more.
        self.chunk_ids = np.frombuffer(ids, dtype=np.int64)
        self._bounds = np.frombuffer(bounds, dtype=np.int64).reshape(-1, 4)  # start, end, first and last sentence
        self.doc_ids = [d[0] for d in docs]
        self.doc_row = doc_row = {d: i for i, d in enumerate(self.doc_ids)}  # article id -> its row
        self.chunk_doc_row = np.fromiter((doc_row[d] for d in chunk_docs), dtype=np.int64, count=len(chunk_docs))
        del chunk_docs
        self._by_doc = np.argsort(self.chunk_doc_row, kind="stable")  # rows grouped by article, in id order
        self._doc_start = np.searchsorted(self.chunk_doc_row[self._by_doc], np.arange(len(docs) + 1))
        self.cache_dir = cache_dir(self.index_dir, meta.get("generation", ""))

        def build_bm25() -> BM25:
            terms = conn.execute("SELECT terms FROM documents ORDER BY doc_id")  # streamed: one article at a time
            return BM25(unpack_text(row[0]).split() for row in terms)

        self.bm25 = self._cached(BM25_CACHE, BM25.load, build_bm25, BM25.save)
        if self.bm25.n_docs != len(docs):
            self.bm25 = build_bm25()
        self.titles = {d[0]: d[1] for d in docs}
        self.sources = {d[0]: d[2] for d in docs}
        self.urls = {d[0]: d[3] or "" for d in docs}
        self.dates = {d[0]: d[4] or "" for d in docs}
        self.outlets = {d[0]: d[5] or d[2] for d in docs}
        self.days = [parse_date(d[4]) for d in docs]  # by row, for date filters
        self.date_range = DateRange.of_days(self.days)
        self.generation = meta.get("generation", "")
        self._reset()

    def _reset(self) -> None:
        """Fresh caches for a newly loaded generation (a subclass adds its own, calling this one)."""
        self._texts = lru_cache(maxsize=64)(self._read_text)  # article texts, the most recently read kept

    def refresh(self) -> bool:
        """Reload when another process (or the web chat's upload) has committed a newer build."""
        with self.lock:
            try:
                gen = self.conn.execute("SELECT value FROM meta WHERE key = 'generation'").fetchone()
            except sqlite3.Error:
                gen = None
            if gen and gen[0] != self.generation:
                old = self.conn
                self._load()
                old.close()
                return True
            return False

    @property
    def embedder(self) -> Embedder:
        with self.lock:
            if self._embedder is None:
                self._embedder = Embedder(str(self.settings.model), self.settings.precision)
            return self._embedder

    @property
    def queries(self) -> QueryEncoder | Embedder:
        """What embeds questions. Once the torch model is loaded (a chat server, a build in this process) it does,
        as it is the faster for longer questions; until then the numpy query encoder does, so a fresh `rag ask`
        never imports torch (and it is the faster for short questions: 13 ms against 17 here). Model folders the
        numpy encoder does not read use the torch model."""
        with self.lock:
            if self._embedder is not None:
                return self._embedder
            if self._queries is None:
                try:
                    self._queries = QueryEncoder(self.settings.model)
                except UnsupportedModel:
                    self._queries = self.embedder
            return self._queries

    @property
    def reader(self) -> Reader | None:
        """The short-answer reader (`rag.reader`) over the numpy encoder, or None where `make reader` has not
        built its weights (or the model folder is not one the numpy encoder reads)."""
        with self.lock:
            if self._reader is False:
                queries = self.queries
                try:
                    encoder = queries if isinstance(queries, QueryEncoder) else QueryEncoder(self.settings.model)
                    self._reader = load_reader(encoder, self.settings.reader)
                except UnsupportedModel:
                    self._reader = None
            return self._reader

    def __len__(self) -> int:
        return len(self.chunk_ids)

    def row(self, chunk_id: int) -> int:
        """The row of a chunk in this generation's arrays."""
        i = int(np.searchsorted(self.chunk_ids, chunk_id))
        if i >= len(self.chunk_ids) or self.chunk_ids[i] != chunk_id:
            raise KeyError(chunk_id)
        return i

    def doc_rows(self, chunk_ids: list[int]) -> np.ndarray:
        """The article row of each chunk (all of them present in this generation), at once."""
        return self.chunk_doc_row[np.searchsorted(self.chunk_ids, np.asarray(chunk_ids, dtype=np.int64))]

    def chunk(self, chunk_id: int) -> ChunkRef:
        """Where a chunk lies: its article, character span, and first and last sentence."""
        row = self.row(chunk_id)
        start, end, first, last = (int(x) for x in self._bounds[row])
        return ChunkRef(chunk_id, self.doc_ids[self.chunk_doc_row[row]], start, end, first, last)

    def read_chunk(self, chunk_id: int) -> Chunk:
        """A chunk with its article's title and outlet and its text."""
        ref = self.chunk(chunk_id)
        doc = ref.doc_id
        text = self.article_text(doc)[ref.start : ref.end]
        return Chunk(chunk_id, doc, self.titles.get(doc, ""), self.sources.get(doc, ""), ref.start, ref.end, text)

    def doc_chunk_ids(self, doc_row: int) -> np.ndarray:
        """The chunk ids of one article (by its row), ascending."""
        return self.chunk_ids[self._by_doc[self._doc_start[doc_row] : self._doc_start[doc_row + 1]]]

    def _cached(self, name: str, load, build, save):
        """What `build` computes from this generation of the index, kept under cache-<generation>/ in the index
        folder so the next process loads it in milliseconds (a read-only index computes it each time)."""
        path = self.cache_dir / name
        try:
            return load(path)
        except (OSError, ValueError, KeyError, EOFError, zlib.error):
            pass
        value = build()
        with contextlib.suppress(OSError):
            self.cache_dir.mkdir(exist_ok=True)
            save(value, path)
        return value

    def article_text(self, doc_id: str) -> str:
        """The cleaned article text that citation offsets point into."""
        return self._texts(doc_id)

    def stored_terms(self, doc_id: str) -> list[str]:
        """The BM25 terms the build stored for an article (`rag.lexical.bm25_terms` of its title and text)."""
        return self._read_packed("terms", doc_id).split()

    def _read_text(self, doc_id: str) -> str:
        return self._read_packed("text", doc_id)

    def _read_packed(self, column: str, doc_id: str) -> str:
        """One compressed column (`text` or `terms`) of an article's row."""
        with self.lock:
            row = self.conn.execute(f"SELECT {column} FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        if row is None:
            raise KeyError(f"no article {doc_id!r} in the index at {self.index_dir}")
        try:
            return unpack_text(row[0])
        except (zlib.error, UnicodeDecodeError) as exc:  # a damaged page inside the stored text
            raise damaged(self.index_dir, exc) from exc

    def content_sources(self) -> list[tuple[str, str]]:
        """(content hash, source file) of every indexed article: what an upload is checked against."""
        with self.lock:
            return self.conn.execute("SELECT content_hash, source FROM documents ORDER BY source").fetchall()

    def documents(self) -> list[dict]:
        """Title, source, article date, outlet, chunk count and date added of every indexed article."""
        with self.lock:
            rows = self.conn.execute(
                "SELECT doc_id, title, source, date, n_chunks, added_at FROM documents ORDER BY added_at, source"
            ).fetchall()
        keys = ("doc_id", "title", "source", "date", "chunks", "added_at")
        return [{**dict(zip(keys, r, strict=True)), "outlet": self.outlets.get(r[0], r[2])} for r in rows]

    def span_vectors(self, chunk_id: int) -> np.ndarray:
        query = "SELECT e.spans FROM chunks c JOIN embeddings e USING (embed_hash) WHERE c.id = ?"
        with self.lock:
            (blob,) = self.conn.execute(query, (chunk_id,)).fetchone()
        return decode_spans(blob, self.vectors.d)

    def sentence_spans(self, doc_id: str, first: int, last: int) -> list[tuple[int, int]]:
        with self.lock:
            return self.conn.execute(
                "SELECT start, end FROM sentences WHERE doc_id = ? AND ord BETWEEN ? AND ? ORDER BY ord",
                (doc_id, first, last),
            ).fetchall()

    def admitted(self, where: DocFilter) -> np.ndarray:
        """Which articles (by row) a filter admits, as a boolean array."""
        with self.lock:
            return np.array(
                [
                    where.admits(day, self.outlets.get(d, ""), self.sources.get(d, ""))
                    for d, day in zip(self.doc_ids, self.days, strict=True)
                ],
                dtype=bool,
            )
