"""Hybrid retrieval over a built index: dense (FAISS) + article-level BM25, fused by score; a LangChain retriever."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import timedelta

import faiss
import numpy as np
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.analysis import QuestionAnalysis
from rag.dates import day_fit
from rag.generation import Chunk, ChunkRef
from rag.language import is_cross_lingual, latin_share
from rag.lexical import bm25_terms
from rag.timeq import DocFilter, Period, asks_latest, question_period

__all__ = ["Chunk", "ChunkRef", "Hit", "HybridRetriever", "SearchIndex", "distinct", "hit_document"]

RECENCY_BAND = 0.06  # a "latest" question's story: candidates scoring within this of the best (bench.timebench)


@dataclass
class Hit(Chunk):
    """One retrieved chunk, with its scores."""

    dense: float  # cosine between question and chunk
    lexical: float  # the article's BM25 score divided by the best article's (0..1)
    score: float  # fused score used for ranking
    margin: float = 0.0  # best cosine minus the mean of the 20 best: how much the top stands out
    lexical_lead: float = 0.0  # 1 minus the mean of the five best articles' BM25 (the best is 1): how it stands out
    copies: list[str] = field(default_factory=list)  # articles holding a copy of this chunk (syndicated stories)
    time: float = 0.0  # the bonus for fitting the time the question names (a day, or "the latest"), in `score`


LEAD_ARTICLES = 5  # articles the lexical lead compares: the best and the next four


class SearchIndex(QuestionAnalysis):
    """A loaded index (`rag.generation`) that reads questions (`rag.analysis`) and searches: dense (FAISS) and
    article-level BM25, fused by score, with the time the question names as a bounded prior."""

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

    def _distinct_lexical_lead(self, lexical: np.ndarray, n: int = LEAD_ARTICLES) -> float:
        """1 minus the mean BM25 (best = 1) of the `n` best articles, copies of one story counted once and missing
        places counted as 0: how far the best article stands out lexically."""
        ranked = [int(d) for d in np.argsort(-lexical)[: 4 * n] if lexical[d] > 0]
        scores = [float(lexical[d]) for d, _ in distinct(ranked, self._story_vector, n)]
        return 1.0 - sum(scores) / n if scores else 0.0

    def _hit(self, cid: int, dense: float, lexical: float, score: float, margin: float) -> Hit:
        return Hit(**vars(self.read_chunk(cid)), dense=dense, lexical=lexical, score=score, margin=margin)


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
    """A retrieved chunk as a LangChain `Document`: its text, and every other field of the hit in the metadata."""
    return Document(page_content=h.text, metadata={f.name: getattr(h, f.name) for f in fields(h) if f.name != "text"})
