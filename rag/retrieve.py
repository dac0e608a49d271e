"""Hybrid retrieval over a built index: dense (FAISS) + article-level BM25, fused by score; a LangChain retriever."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import zlib
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import NamedTuple

import faiss
import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.articles import unpack_text
from rag.crosslingual import Concept, Lexicon, NameMatcher, QueryConcept, get_lexicon, translate_question
from rag.dates import day_fit
from rag.embed import Embedder, model_fingerprint
from rag.lexical import BM25, QUESTION_WORDS_AR, analyze, bm25_terms, normalize_arabic, query_words
from rag.query_encoder import QueryEncoder, UnsupportedModel
from rag.settings import Settings
from rag.store import (
    BM25_CACHE,
    DB_NAME,
    NAMES_CACHE,
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
from rag.timeq import DateRange, DocFilter, Period, asks_latest, parse_date, question_period
from rag.vectors import decode_spans, set_search_params

RECENCY_BAND = 0.06  # a "latest" question's story: candidates scoring within this of the best (bench.timebench)


class ChunkRef(NamedTuple):
    """Where one chunk lies in its article."""

    chunk_id: int
    doc_id: str
    start: int
    end: int
    first_sentence: int
    last_sentence: int


@dataclass
class Hit:
    """One retrieved chunk."""

    chunk_id: int
    doc_id: str
    title: str
    source: str
    start: int
    end: int
    text: str
    dense: float  # cosine between question and chunk
    lexical: float  # the article's BM25 score divided by the best article's (0..1)
    score: float  # fused score used for ranking
    margin: float = 0.0  # best cosine minus the mean of the 20 best: how much the top stands out
    lexical_lead: float = 0.0  # 1 minus the mean of the five best articles' BM25 (the best is 1): how it stands out
    copies: list[str] = field(default_factory=list)  # articles holding a copy of this chunk (syndicated stories)
    time: float = 0.0  # the bonus for fitting the time the question names (a day, or "the latest"), in `score`


def latin_share(text: str) -> float:
    """Share of the letters in `text` that are ASCII (0 for Arabic, 1 for English)."""
    letters = [c for c in text if c.isalpha()]
    return sum(c.isascii() for c in letters) / len(letters) if letters else 0.0


def is_cross_lingual(question: str) -> bool:
    """A mostly Latin-script question over the Arabic articles (its query vector and refusal have own rules)."""
    return latin_share(question) > 0.5


class SearchIndex:
    """A loaded index: FAISS vectors, BM25 over Arabic-normalised stems, and SQLite for texts and offsets.

    Reloads itself when a build commits a new generation, so a running chat sees new articles at once.
    """

    def __init__(
        self, index_dir: str | Path | None = None, settings: Settings | None = None, embedder: Embedder | None = None
    ) -> None:
        self.settings = settings or Settings.from_env()
        self.index_dir = Path(index_dir) if index_dir is not None else self.settings.index_dir
        if not (self.index_dir / DB_NAME).is_file():
            raise IndexMissing(f"no index at {self.index_dir}: run `make index` (or `rag index`)")
        self._embedder = embedder
        self._queries: QueryEncoder | Embedder | None = None
        self.lock = threading.RLock()  # also held by a caller that must read one generation across several calls
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._concept_cache: OrderedDict[str, list[QueryConcept]] = OrderedDict()
        self._article_terms: OrderedDict[str, frozenset[str]] = OrderedDict()
        self._names: NameMatcher | None = None
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
        doc_row = {d: i for i, d in enumerate(self.doc_ids)}
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
        self._texts: OrderedDict[str, str] = OrderedDict()  # article texts of this generation, most recent last
        self.titles = {d[0]: d[1] for d in docs}
        self.sources = {d[0]: d[2] for d in docs}
        self.urls = {d[0]: d[3] or "" for d in docs}
        self.dates = {d[0]: d[4] or "" for d in docs}
        self.outlets = {d[0]: d[5] or d[2] for d in docs}
        self.days = [parse_date(d[4]) for d in docs]  # by row, for date filters
        self.date_range = DateRange.of_days(self.days)
        self.generation = meta.get("generation", "")
        self._concept_cache = OrderedDict()
        self._article_terms = OrderedDict()
        self._names = None

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

    def doc_chunk_ids(self, doc_row: int) -> np.ndarray:
        """The chunk ids of one article (by its row), ascending."""
        return self.chunk_ids[self._by_doc[self._doc_start[doc_row] : self._doc_start[doc_row + 1]]]

    # -- reading -------------------------------------------------------------------------------------
    def query_vector(self, question: str) -> np.ndarray:
        with self.lock:
            if question in self._query_cache:
                self._query_cache.move_to_end(question)
                return self._query_cache[question]
        vec = self.queries.embed_query(question)
        if self.settings.query_centering and is_cross_lingual(question):
            # Take part of the "English question" direction out: on XQuAD English->Arabic this lifted R@1 from
            # 0.770 to 0.784 and made answerable and unanswerable questions easier to tell apart.
            vec = vec - self.settings.query_centering * self.queries.english_question_centroid()
            vec = (vec / np.linalg.norm(vec)).astype(np.float32)
        with self.lock:
            self._query_cache[question] = vec
            while len(self._query_cache) > 256:
                self._query_cache.popitem(last=False)
        return vec

    @property
    def lexicon(self) -> Lexicon | None:
        """The English-Arabic lexicon, or None (warned about once) when the dictionary is not installed."""
        return get_lexicon(self.settings.lexicon, self.settings.lexicon_cache)

    def name_matcher(self) -> NameMatcher:
        """The index's Arabic words by consonant skeleton, built on the first Latin-script question of a generation."""
        with self.lock:
            if self._names is None:
                rows = lambda: self.conn.execute("SELECT title, text FROM documents")  # noqa: E731
                self._names = self._cached(
                    NAMES_CACHE,
                    NameMatcher.load,
                    lambda: NameMatcher.from_texts(f"{title} {unpack_text(text)}" for title, text in rows()),
                    NameMatcher.save,
                )
            return self._names

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

    def warm(self) -> None:
        """Compute and keep this generation's caches now (after a build), not on the first question."""
        self.name_matcher()

    def _in_corpus(self, word: str) -> bool:
        return any(t in self.bm25.vocab for t in analyze(word))

    def concepts(self, question: str) -> list[QueryConcept]:
        """The question as concepts with Arabic alternatives: translated when it is in Latin script (see
        `rag.crosslingual`), else one concept per content word."""
        with self.lock:
            if question in self._concept_cache:
                return self._concept_cache[question]
            if is_cross_lingual(question):
                raw = translate_question(
                    question,
                    self.lexicon,
                    self.name_matcher(),
                    in_corpus=self._in_corpus,
                    max_translations=self.settings.max_translations,
                )
            else:
                words = [w for w in query_words(question) if normalize_arabic(w) not in QUESTION_WORDS_AR]
                raw = [Concept(w, "number" if w[0].isdigit() else "word", [w]) for w in words]
            concepts = [self._query_concept(c) for c in raw]
            self._concept_cache[question] = concepts
            while len(self._concept_cache) > 256:
                self._concept_cache.popitem(last=False)
            return concepts

    def _query_concept(self, concept: Concept) -> QueryConcept:
        alternatives, weights = [], []
        for alt in concept.alternatives:
            words = [frozenset(analyze(w)) for w in query_words(alt)]
            if not words or not all(words):
                continue
            alternatives.append(words)
            idf = [
                max((self.bm25.idf[self.bm25.vocab[t]] for t in w if t in self.bm25.vocab), default=0.0) for w in words
            ]
            if min(idf) > 0:
                weights.append(float(np.mean(idf)))
        top_idf = float(np.log1p((self.bm25.n_docs + 0.5) / 0.5))  # a term in no document
        return QueryConcept(concept.source, concept.kind, alternatives, max(weights) if weights else top_idf)

    def article_terms(self, doc_id: str) -> frozenset[str]:
        """The stem terms of an article (title and text), for checking which question concepts it holds."""
        with self.lock:
            if doc_id not in self._article_terms:
                self._article_terms[doc_id] = frozenset(
                    analyze(f"{self.titles.get(doc_id, '')}\n{self.article_text(doc_id)}")
                )
                while len(self._article_terms) > 64:
                    self._article_terms.popitem(last=False)
            return self._article_terms[doc_id]

    def lexical_scores(self, question: str) -> tuple[np.ndarray, float]:
        """Every article's BM25 score divided by the best one's (0..1), and the weight it gets in the fused score.

        An Arabic question is searched by its own words; a Latin-script one by its translated concepts, each
        scoring by its best alternative. A Latin-script question without any concept gets no lexical part.
        """
        if is_cross_lingual(question):
            weight = self.settings.lexical_weight_cross
            raw = self.bm25.concept_scores(c.bm25 for c in self.concepts(question)) if weight > 0 else None
        else:
            weight = self.settings.lexical_weight * (1.0 - latin_share(question))
            raw = self.bm25.scores(bm25_terms(question)) if weight > 0 else None
        if raw is None or not len(raw) or raw.max() <= 0:
            return np.zeros(len(self.doc_ids), dtype=np.float32), 0.0
        return raw / raw.max(), weight

    def term_weights(self, terms: list[str]) -> dict[str, float]:
        """IDF of each distinct term (0 for terms the corpus lacks)."""
        return {t: float(self.bm25.idf[self.bm25.vocab[t]]) if t in self.bm25.vocab else 0.0 for t in set(terms)}

    def article_text(self, doc_id: str) -> str:
        """The cleaned article text that citation offsets point into."""
        with self.lock:
            if doc_id in self._texts:
                self._texts.move_to_end(doc_id)
                return self._texts[doc_id]
            row = self.conn.execute("SELECT text FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                raise KeyError(f"no article {doc_id!r} in the index at {self.index_dir}")
            try:
                self._texts[doc_id] = text = unpack_text(row[0])
            except (zlib.error, UnicodeDecodeError) as exc:  # a damaged page inside the stored text
                raise damaged(self.index_dir, exc) from exc
            while len(self._texts) > 64:
                self._texts.popitem(last=False)
            return text

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

    def search(self, question: str, k: int | None = None, where: DocFilter | None = None) -> list[Hit]:
        """Top-k chunks for the question, among the articles `where` admits (all when None; none may match).

        A chunk's score is its cosine with the question plus `lexical_weight` times its article's BM25 score
        (divided by the best article's, so it lies in 0..1). An English question is searched in BM25 by its
        translation (`lexical_scores`). Score fusion beat reciprocal-rank fusion on ARCD-train and XQuAD
        (`python -m bench.tune`).
        """
        self.refresh()
        k = k or self.settings.top_k
        with self.lock:
            n = len(self.chunk_ids)
            if n == 0:
                return []
            admitted = self.admitted(where) if where else None
            if admitted is not None and not admitted.any():
                return []
            qvec = self.query_vector(question).astype(np.float32)
            depth = min(n, max(self.settings.candidates, k))
            params = None
            if admitted is not None:  # FAISS searches only the admitted articles' chunks
                ids = np.concatenate([self.doc_chunk_ids(d) for d in np.flatnonzero(admitted)]).astype(np.int64)
                params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(ids))
            dense_scores, dense_ids = self.vectors.search(qvec[None, :], depth, params=params)
            dense = {int(c): float(s) for c, s in zip(dense_ids[0], dense_scores[0], strict=True) if c >= 0}
            lexical, weight = self.lexical_scores(question)
            if admitted is not None and weight > 0:
                lexical = lexical * admitted
                lexical = lexical / lexical.max() if lexical.max() > 0 else lexical
            if weight > 0:
                for d in np.argsort(-lexical)[: self.settings.candidates]:
                    if lexical[d] <= 0:
                        break
                    for cid in self.doc_chunk_ids(d).tolist():  # chunks of lexically strong articles get their cosine
                        if cid not in dense:
                            dense[cid] = float(self.vectors.reconstruct(cid) @ qvec)
            cids = list(dense)
            doc_lexical = lexical[self.doc_rows(cids)].tolist()
            fused = {c: dense[c] + weight * float(x) for c, x in zip(cids, doc_lexical, strict=True)}
            timed = self.time_prior(question, fused)
            fused = {c: s + timed.get(c, 0.0) for c, s in fused.items()}
            margin = self._distinct_margin(dense)
            lexical_lead = self._distinct_lexical_lead(lexical) if weight > 0 else 0.0
            hits = []
            for cid, copies in self._distinct_chunks(sorted(fused, key=lambda c: -fused[c]), k):
                lex = float(lexical[self.chunk_doc_row[self.row(cid)]])
                hit = self._hit(cid, dense[cid], lex, fused[cid], margin)
                hit.lexical_lead, hit.copies, hit.time = lexical_lead, copies, timed.get(cid, 0.0)
                hits.append(hit)
            return hits

    def time_prior(self, question: str, base: dict[int, float]) -> dict[int, float]:
        """A bounded bonus per candidate chunk (by its `base` score) for the time the question names.

        A day or a week in the corpus's range ("on Monday 10 August 2015", "last week", "on Thursday": relative ones
        count from the newest article): `time_weight` times its article's fit (`_period_fit`).

        A "latest" question: among the articles whose best chunk scores within RECENCY_BAND of the best one (the
        reports of the story), `recency_weight` over the rank of its day, newest first (1, 1/2, 1/3, ...). A prior,
        not a sort: an older report that answers can still beat a newer one that does not.
        """
        rows = dict(zip(base, self.doc_rows(list(base)).tolist(), strict=True))
        period = question_period(question, now=self.date_range.last)
        # a day or a week, not a month: "by the end of June" is reported in July, so a month says little of the date
        # of the report (on the news dev set a month prior cost one English question its evidence)
        if (
            period
            and period.precision in ("day", "week")
            and self.settings.time_weight
            and not self.date_range.outside(period)
        ):
            fit = {r: self._period_fit(r, period) for r in set(rows.values())}
            return {c: self.settings.time_weight * fit[r] for c, r in rows.items() if fit[r]}
        if not (self.settings.recency_weight and base and asks_latest(question)):
            return {}
        top = max(base.values())
        story = {r: self.days[r] for c, r in rows.items() if base[c] >= top - RECENCY_BAND and self.days[r]}
        if len(set(story.values())) < 2:
            return {}
        newest = sorted(set(story.values()), reverse=True)  # the story's days, newest first: 1, 1/2, 1/3, ...
        fresh = {r: 1.0 / (1 + newest.index(day)) for r, day in story.items()}
        return {c: self.settings.recency_weight * fresh[r] for c, r in rows.items() if r in fresh}

    def _period_fit(self, row: int, period: Period) -> float:
        """An article's fit to a day (`rag.dates.day_fit`), or 1.0 for one dated within a week (or the day after it:
        a report is often collected the next day)."""
        day = self.days[row]
        if period.precision == "day":
            return day_fit(day, self.article_text(self.doc_ids[row]), period.start)
        return float(day is not None and period.start <= day <= period.end + timedelta(days=1))

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

    def _distinct_margin(self, dense: dict[int, float], n: int = 20) -> float:
        """The best cosine minus the mean of the `n` best, counting near-identical chunks once: syndicated copies of
        one story (a wire text in two outlets, a copy with a line added) would otherwise fill the top and erase the
        lead of a chunk that truly stands out."""
        ranked = sorted(dense, key=lambda c: -dense[c])[: 4 * n]
        scores = [dense[c] for c, _ in distinct(ranked, self.vectors.reconstruct, n)]
        return scores[0] - float(np.mean(scores)) if scores else 0.0

    def _distinct_chunks(self, ranked: list[int], k: int) -> list[tuple[int, list[str]]]:
        """The first `k` chunks of `ranked` that are not copies of a better one (a syndicated copy of the story),
        each with the other articles whose copies it stands for."""
        out = []
        for cid, dups in distinct(ranked, self.vectors.reconstruct, k):
            doc = self.chunk(cid).doc_id
            out.append((cid, list(dict.fromkeys(d for c in dups if (d := self.chunk(c).doc_id) != doc))))
        return out

    def _story_vector(self, doc_row: int) -> np.ndarray:
        """An article's mean chunk vector, unit length: near-identical for syndicated copies of one story."""
        vec = np.mean([self.vectors.reconstruct(int(c)) for c in self.doc_chunk_ids(doc_row)], axis=0)
        return vec / (np.linalg.norm(vec) or 1.0)

    def _distinct_lexical_lead(self, lexical: np.ndarray, n: int = 5) -> float:
        """1 minus the mean BM25 (best = 1) of the `n` best articles, copies of one story counted once and missing
        places counted as 0: how far the best article stands out lexically."""
        ranked = [int(d) for d in np.argsort(-lexical)[: 4 * n] if lexical[d] > 0]
        scores = [float(lexical[d]) for d, _ in distinct(ranked, self._story_vector, n)]
        return 1.0 - sum(scores) / n if scores else 0.0

    def _hit(self, cid: int, dense: float, lexical: float, score: float, margin: float) -> Hit:
        ref = self.chunk(cid)
        doc, start, end = ref.doc_id, ref.start, ref.end
        title, source = self.titles.get(doc, ""), self.sources.get(doc, "")
        return Hit(
            cid, doc, title, source, start, end, self.article_text(doc)[start:end], dense, lexical, score, margin
        )


def distinct(ranked: list[int], vector_of, limit: int, same: float = 0.97) -> list[tuple[int, list[int]]]:
    """The first `limit` items of `ranked` whose vectors are not near-identical (cosine >= `same`) to a better kept
    one, each with the items it stands for: how copies of one story are counted once."""
    kept: list[tuple[int, np.ndarray, list[int]]] = []
    for item in ranked:
        vec = vector_of(item)
        for _, kvec, dups in kept:
            if float(vec @ kvec) >= same:
                dups.append(item)
                break
        else:
            if len(kept) == limit:
                break
            kept.append((item, vec, []))
    return [(item, dups) for item, _, dups in kept]


class HybridRetriever(BaseRetriever):
    """LangChain retriever over a SearchIndex: `Document`s whose metadata carry ids, offsets and scores."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    index: SearchIndex
    k: int | None = None
    where: DocFilter | None = None  # the articles a user narrowed the search to (dates, outlets)

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [hit_document(h) for h in self.index.search(query, self.k, self.where)]


def hit_document(h: Hit) -> Document:
    """A retrieved chunk as a LangChain `Document`: its text, with ids, offsets and scores in the metadata."""
    return Document(
        page_content=h.text,
        metadata={
            "chunk_id": h.chunk_id,
            "doc_id": h.doc_id,
            "title": h.title,
            "source": h.source,
            "start": h.start,
            "end": h.end,
            "dense": h.dense,
            "lexical": h.lexical,
            "score": h.score,
            "margin": h.margin,
            "lexical_lead": h.lexical_lead,
            "copies": h.copies,
            "time": h.time,
        },
    )
