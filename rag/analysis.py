"""What a question is made of, read against one index generation: its vector, and its concepts (translated for a
Latin-script question, `rag.crosslingual`) weighed by the corpus's IDF; an article's terms to check them against."""

from __future__ import annotations

from functools import lru_cache, partial

import numpy as np

from rag.articles import unpack_text
from rag.crosslingual import Concept, Lexicon, QueryConcept, get_lexicon, translate_question
from rag.generation import Generation
from rag.language import is_cross_lingual
from rag.lexical import QUESTION_WORDS_AR, analyze, normalize_arabic, query_words
from rag.names import attested_spellings
from rag.places import get_places
from rag.spelling import NameMatcher
from rag.store import NAMES_CACHE
from rag.timeq import MONTHS_AR


@lru_cache(maxsize=12)
def month_terms(month: int) -> frozenset[str]:
    """The stem terms of a month's Arabic names in both systems (8: أغسطس, آب)."""
    return frozenset(analyze(" ".join(name for name, m in MONTHS_AR.items() if m == month)))


class QuestionAnalysis(Generation):
    """A generation that reads questions: `query_vector`, `concepts`, `article_terms`, `term_weights`."""

    def __init__(self, *args, **kwargs) -> None:
        # a question's vector depends on the model only: kept across generations (the rest is reset with each)
        self._query_vectors = lru_cache(maxsize=256)(self._embed_question)
        super().__init__(*args, **kwargs)

    def _reset(self) -> None:
        super()._reset()
        self._concepts = lru_cache(maxsize=256)(self._analyse)
        self._terms = lru_cache(maxsize=64)(self._read_terms)
        self._names: NameMatcher | None = None

    def forget_questions(self) -> None:
        """Empty the question caches (vectors, concepts, the reader's readings): for timing a question as if it were
        asked first."""
        self._query_vectors.cache_clear()
        self._concepts.cache_clear()
        if self._reader:  # only where it was loaded already
            self._reader.forget()

    def query_vector(self, question: str) -> np.ndarray:
        """The question's vector (a Latin-script one with part of the English-question direction taken out)."""
        return self._query_vectors(question)

    def _embed_question(self, question: str) -> np.ndarray:
        vec = self.queries.embed_query(question)
        if self.settings.query_centering and is_cross_lingual(question):
            # Take part of the "English question" direction out: on XQuAD English->Arabic this lifted R@1 from
            # 0.770 to 0.784 and made answerable and unanswerable questions easier to tell apart.
            vec = vec - self.settings.query_centering * self.queries.english_question_centroid()
            vec = (vec / np.linalg.norm(vec)).astype(np.float32)
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

    def warm(self) -> None:
        """Compute and keep this generation's caches now (after a build), not on the first question."""
        self.name_matcher()

    def _in_corpus(self, word: str) -> bool:
        return any(t in self.bm25.vocab for t in analyze(word))

    def concepts(self, question: str) -> list[QueryConcept]:
        """The question as concepts with Arabic alternatives: translated when it is in Latin script (see
        `rag.crosslingual`), else one concept per content word."""
        return self._concepts(question)

    def _analyse(self, question: str) -> list[QueryConcept]:
        with self.lock:
            if is_cross_lingual(question):
                raw = translate_question(
                    question,
                    self.lexicon,
                    self.name_matcher(),
                    in_corpus=self._in_corpus,
                    max_translations=self.settings.max_translations,
                    places=get_places(self.settings.lexicon_cache),
                    spellings=partial(attested_spellings, cache_dir=self.settings.lexicon_cache),
                )
            else:
                words = [w for w in query_words(question) if normalize_arabic(w) not in QUESTION_WORDS_AR]
                raw = [Concept(w, "number" if w[0].isdigit() else "word", [w]) for w in words]
            return [self._query_concept(c) for c in raw]

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
        """The stem terms of an article (title and text), for checking which question concepts it holds; a dated
        article also holds its month's names (an article of 10 August reports "today", seldom "August")."""
        return self._terms(doc_id)

    def _read_terms(self, doc_id: str) -> frozenset[str]:
        # the build stored analyze's stems of title and text plus character 3-grams ("@"): the stems are these
        terms = frozenset(t for t in self.stored_terms(doc_id) if not t.startswith("@"))
        day = self.days[self.doc_row[doc_id]] if doc_id in self.doc_row else None
        return terms | month_terms(day.month) if day else terms

    def term_weights(self, terms: list[str]) -> dict[str, float]:
        """IDF of each distinct term (0 for terms the corpus lacks)."""
        return {t: float(self.bm25.idf[self.bm25.vocab[t]]) if t in self.bm25.vocab else 0.0 for t in set(terms)}
