"""Whether the corpus answers a question: one calibrated decision (logistic regression) over named features.

The model is a JSON file (`rag/data/refusal.json`, RAG_REFUSAL_MODEL) holding its version, feature list,
standardisation, weights and thresholds, and a second such model (`with_reader`) with the reader's score as one
more feature, which decides where the reader is built (`make reader`) and the first model's probability lies in its
uncertain band (a cascade: the reader reads only the questions the word features leave open). Both are fitted by
`python -m bench.calibrate` on tuning data only: the news dev set's tuning half and half of the XQuAD articles. The
features are computed here and nowhere else.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document

from rag.crosslingual import coverage
from rag.language import is_cross_lingual
from rag.lexical import analyze
from rag.retrieve import LEAD_ARTICLES, SearchIndex
from rag.settings import UserError
from rag.timeq import DocFilter, question_period
from rag.values import expected_value

MODEL_VERSION = 2
FEATURES = (
    "dense",  # best chunk cosine with the question
    "lead",  # how far the best cosine stands out from the 20 best
    "cross",  # 1 for a Latin-script question: its cosines run lower
    "cross_dense",
    "cross_lead",
    "coverage_article",  # IDF-weighted share of the question's concepts found in the best evidence's article
    "coverage_quote",  # the same in the sentences that would be quoted
    "missing_corpus",  # IDF-weighted share of the question's concepts found nowhere in the corpus
    "numbers_missing_corpus",  # share of its numbers and years that no article contains
    "keys_missing_article",  # share of the question's names and numbers missing from the best evidence's article
    "keys_missing_quote",  # the same for the sentences that would be quoted
    "sentence",  # score of the best evidence sentence (cosine in context, overlap, answer-type cue)
    "coverage_window",  # the best share of the concepts found together in one quoted sentence and its neighbours
    "keys_missing_window",  # share of names and numbers missing from that window
    "type_missing",  # asks how many / when, and no quoted sentence holds a number or a date
    "time_outside",  # the question names a time outside the corpus's dated range
    "coverage_sentence",  # the best share of the concepts found in one quoted sentence alone
    "rare_missing_window",  # share of the question's two rarest concepts missing from the best window
    "lexical_lead",  # how far the best article's BM25 stands out from the next four (0 with no lexical match)
    "lexical_best",  # BM25 of the best chunk's article against the best article's (1 when they are the same)
)
# With a built reader (`rag.reader`), the model that applies to a question in the uncertain band has one more
# feature: how sure the reader is that the first evidence sentences hold an answer to the question, a cross-encoder
# reading where the features above count words. `RefusalModel.with_reader` is fitted with it; without a reader, or
# outside the band, the model above decides alone.
READER_FEATURES = (*FEATURES, "reader")
READER_SENTENCES = 1  # evidence sentences the reader reads for the decision, best first
READER_FLOOR = -20.0  # a score below this (or none: no sentence) counts as this
EVERY = (0.0, 1.01)  # a `with_reader` band that takes every probability (a file without a band)
_HOW = re.compile(r"\bhow (many|much|long|old|far|big|large|often)\b", re.IGNORECASE)
WINDOW = 250  # characters either side of a quoted sentence that count as its neighbourhood


def refusal_features(index: SearchIndex, question: str, docs: list[Document], evidence: list) -> dict[str, float]:
    """FEATURES of one question, its retrieved chunks and its scored evidence sentences (best first)."""
    concepts = index.concepts(question)
    dense = max((d.metadata["dense"] for d in docs), default=0.0)
    lead = docs[0].metadata.get("margin", 0.0) if docs else 0.0
    cross = float(is_cross_lingual(question))
    vocab = index.bm25.vocab.keys()
    if evidence:
        article = index.article_terms(evidence[0].doc_id)
        quoted = frozenset(t for e in evidence[:3] for t in analyze(e.quote))
    else:
        article = quoted = frozenset()
    numbers = [c for c in concepts if c.kind == "number"]
    windows = [frozenset(analyze(t)) for t in quote_windows(index, evidence)]
    best_window = max(windows, key=lambda w: coverage(concepts, w), default=frozenset())
    quotes = " ".join(e.quote for e in evidence[:3])
    wants = expected_value(question)
    sentences = [frozenset(analyze(e.quote)) for e in evidence[:5]]
    rare = sorted(concepts, key=lambda c: -c.weight)[:2]
    period = question_period(question)
    # How the best stands out from the next ones is unknown in a corpus of fewer than five articles. Read as
    # measured, the seed alone gave every question the top lexical lead (0.8; "ما هي عاصمة أستراليا؟" was answered
    # from the one article on Albania), and a one-chunk article a dense lead of 0 (its own answer refused).
    unknown = index.bm25.n_docs < LEAD_ARTICLES
    lead = math.nan if unknown else lead
    return {
        "dense": dense,
        "lead": lead,
        "cross": cross,
        "cross_dense": cross * dense,
        "cross_lead": lead if cross else 0.0,
        # a question with nothing to look up (only stop words) has covered nothing, not everything
        "coverage_article": coverage(concepts, article) if concepts else 0.0,
        "coverage_quote": coverage(concepts, quoted) if concepts else 0.0,
        "missing_corpus": 1.0 - coverage(concepts, vocab),
        "numbers_missing_corpus": sum(not c.found_in(vocab) for c in numbers) / len(numbers) if numbers else 0.0,
        "keys_missing_article": 1.0 - coverage(concepts, article, keys_only=True),
        "keys_missing_quote": 1.0 - coverage(concepts, quoted, keys_only=True),
        "sentence": evidence[0].score if evidence else 0.0,
        "coverage_window": coverage(concepts, best_window) if concepts else 0.0,
        "keys_missing_window": 1.0 - coverage(concepts, best_window, keys_only=True),
        "type_missing": float(wants is not None and not wants.search(quotes)),
        "time_outside": index.date_range.outside(period) if period else 0.0,
        "coverage_sentence": max((coverage(concepts, t) for t in sentences), default=0.0) if concepts else 0.0,
        "rare_missing_window": 1.0 - coverage(rare, best_window) if rare else 0.0,
        "lexical_lead": math.nan if unknown else docs[0].metadata.get("lexical_lead", 0.0) if docs else 0.0,
        "lexical_best": docs[0].metadata.get("lexical", 0.0) if docs else 0.0,
    }


def reader_score(reader, question: str, evidence: list) -> float:
    """The reader's best span score (answer less "not here") in the first READER_SENTENCES evidence sentences."""
    spans = reader.read(question, [e.quote for e in evidence[:READER_SENTENCES]])
    return max(READER_FLOOR, max((s.score for s in spans), default=READER_FLOOR))


def decision_features(
    index: SearchIndex, model: RefusalModel, question: str, docs: list[Document], evidence: list
) -> tuple[RefusalModel, dict[str, float]]:
    """The model that decides and its features: `model` over FEATURES, or, where a reader is built and `model`'s
    probability lies in `with_reader`'s band, `with_reader` over READER_FEATURES (the reader is loaded and run only
    then)."""
    features = refusal_features(index, question, docs, evidence)
    inner = model.with_reader
    if inner is None or not inner.defers(model.probability(features), is_cross_lingual(question)):
        return model, features
    reader = index.reader
    if reader is None:
        return model, features
    return inner, {**features, "reader": reader_score(reader, question, evidence)}


def quote_windows(index: SearchIndex, evidence: list, n: int = 5) -> list[str]:
    """The text around each of the first `n` evidence sentences (or citations): the sentence and WINDOW characters
    either side."""
    out = []
    for e in evidence[:n]:
        text = index.article_text(e.doc_id)
        out.append(text[max(0, e.start - WINDOW) : e.end + WINDOW])
    return out


def after_corpus(index: SearchIndex, question: str) -> bool:
    """The question names a day or a month that starts after the newest dated article: no article can report it."""
    period = question_period(question)
    return bool(period and period.precision != "year" and index.date_range.after(period))


def _join(words: list[str], arabic: bool) -> str:
    quoted = [f"«{w}»" if arabic else w for w in words]
    if len(quoted) < 2:
        return "".join(quoted)
    return f"{'، '.join(quoted[:-1])} أو {quoted[-1]}" if arabic else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def cited_gap(index: SearchIndex, question: str, citations: list) -> tuple[float, list[str], list[str]]:
    """How much of the question the cited passages miss (IDF-weighted share of its concepts absent from the quotes
    and WINDOW characters around them), with the concepts they hold and those they lack, rarest first."""
    concepts = sorted(index.concepts(question), key=lambda c: -c.weight)
    asked = {m.group(1).lower() for m in _HOW.finditer(question)}  # "how long": what is asked, not a topic
    concepts = [c for c in concepts if c.source.lower() not in asked]
    if not concepts or not citations:
        return 0.0, [], []
    terms = frozenset(analyze(" ".join(quote_windows(index, citations, len(citations)))))
    held = [c.source for c in concepts if c.found_in(terms)]
    lacking = [c.source for c in concepts if not c.found_in(terms)]
    return 1.0 - coverage(concepts, terms), held, lacking


def partial_note(index: SearchIndex, question: str, citations: list, cut: float) -> str:
    """One line when the quoted passages hold the question's topic but miss too much of what it asks: what they
    mention and what they do not, in the question's language; "" otherwise."""
    gap, held, lacking = cited_gap(index, question, citations)
    vocab = index.bm25.vocab.keys()
    names = [c for c in index.concepts(question) if c.kind == "name"]
    unknown = bool(names) and not any(c.found_in(vocab) for c in names)
    absent = [c for c in index.concepts(question) if c.source in lacking and not c.found_in(vocab)]
    # A single lacking concept is as often a word the lexicon could not translate: the answer is flagged when two
    # or more are lacking past the cut, when two or more are found in no article at all (a stampede in a corpus
    # that has the Hajj season), or when every name of the question is found in no article.
    if not lacking or not (unknown or len(absent) >= 2 or (gap >= cut and len(lacking) >= 2)):
        return ""
    if not is_cross_lingual(question):
        mention = f"تذكر المقاطع المقتبسة {_join(held[:2], True).replace(' أو ', ' و')} لكنها " if held else ""
        return f"إجابة جزئية: {mention}لا تذكر {_join(lacking[:3], True)}."
    mention = f"mention {' and '.join(held[:2])} but " if held else ""
    return f"Partial answer: the quoted passages {mention}do not mention {_join(lacking[:3], False)}."


def explain_refusal(
    index: SearchIndex, question: str, docs: list[Document], where: DocFilter | None = None
) -> tuple[str, list[dict]]:
    """One line on what the articles lack, in the question's language, and the three closest articles (title, date,
    source), offered as related reading, not as an answer."""
    arabic = not is_cross_lingual(question)
    related, seen = [], set()
    for d in docs:
        doc = d.metadata["doc_id"]
        if doc not in seen and len(related) < 3:
            seen.add(doc)
            related.append(
                {
                    "doc_id": doc,
                    "title": index.titles.get(doc, ""),
                    "date": index.dates.get(doc, ""),
                    "source": index.sources.get(doc, ""),
                    "outlet": index.outlets.get(doc, ""),
                    "url": index.urls.get(doc, ""),
                }
            )
    if where is not None and not docs:
        if arabic:
            return f"لا توجد مقالة تطابق التصفية ({where.describe(True)}).", related
        return f"No article matches the filter ({where.describe()}).", related
    period = question_period(question)
    span = index.date_range.describe(arabic)
    if period and span and index.date_range.outside(period):
        when = period.label(arabic)
        if arabic:
            return f"تغطي المقالات الفترة {span}، ولا تتناول أي منها {when}.", related
        return f"The articles run {span}; none covers {when}.", related
    concepts = sorted(index.concepts(question), key=lambda c: -c.weight)
    vocab = index.bm25.vocab.keys()
    absent = [c.source for c in concepts if not c.found_in(vocab)][:3]
    if absent:
        return (
            f"لا تذكر أي مقالة {_join(absent, True)}." if arabic else f"No article mentions {_join(absent, False)}."
        ), related
    near = frozenset().union(*(index.article_terms(r["doc_id"]) for r in related)) if related else frozenset()
    lacking = [c.source for c in concepts if not c.found_in(near)][:3]
    if lacking:
        if arabic:
            return f"لا تذكر أقرب المقالات {_join(lacking, True)}.", related
        return f"The closest articles do not mention {_join(lacking, False)}.", related
    if arabic:
        return "أقرب المقالات تتناول الموضوع لكنها لا تذكر ما يُسأل عنه.", related
    return "The closest articles are on this topic but do not state what is asked.", related


def _is_band(value: object) -> bool:
    """Two numbers, low before high: a `with_reader` model's band as the file holds it."""
    return (
        isinstance(value, list | tuple)
        and len(value) == 2
        and all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
        and value[0] <= value[1]
    )


class RefusalModelError(UserError):
    """The refusal model file is missing or not of this version; the message names the fix."""


@dataclass
class RefusalModel:
    """A logistic regression over standardised features; answer when the probability reaches the threshold of the
    question's script (`threshold` for Arabic, `threshold_cross` for Latin-script questions, whose retrieval is
    noisier and which each have their own answered floor in the calibration)."""

    features: tuple[str, ...]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    threshold_cross: float = -1.0  # < 0: the same as `threshold`
    note: str = ""
    partial_cut: float = 1.1  # an answer whose quoted passages miss this share of the question is flagged partial
    partial_cut_cross: float = 1.1  # the same for Latin-script questions (> 1: never)
    with_reader: RefusalModel | None = None  # over READER_FEATURES: decides in its band where a reader is built
    # of a `with_reader` model: the outer model's probabilities [low, high) it decides (Arabic, Latin script); outside
    # its band the outer model decides by its own threshold. The default takes every question.
    band: tuple[float, float] = EVERY
    band_cross: tuple[float, float] = EVERY

    def defers(self, p: float, cross: bool) -> bool:
        """Whether this (inner) model decides a question the outer model gives probability `p`."""
        low, high = self.band_cross if cross else self.band
        return low <= p < high

    def partial_cut_for(self, cross: bool) -> float:
        return self.partial_cut_cross if cross else self.partial_cut

    def threshold_for(self, cross: bool) -> float:
        return self.threshold_cross if cross and self.threshold_cross >= 0 else self.threshold

    def probability(self, features: dict[str, float]) -> float:
        """The probability that the corpus answers; a feature that is unknown (NaN) counts as its tuning mean."""
        z = self.intercept + sum(
            c * (features[name] - m) / s
            for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
            if not math.isnan(features[name])
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_dict(self) -> dict:
        if self.features == READER_FEATURES:  # a `with_reader` model: its band
            extra = {"band": list(self.band), "band_cross": list(self.band_cross)}
        else:
            extra = {"with_reader": self.with_reader.to_dict()} if self.with_reader is not None else {}
        return {
            "version": MODEL_VERSION,
            "features": list(self.features),
            "mean": self.mean,
            "scale": self.scale,
            "coef": self.coef,
            "intercept": self.intercept,
            "threshold": self.threshold,
            "threshold_cross": self.threshold_cross,
            "partial_cut": self.partial_cut,
            "partial_cut_cross": self.partial_cut_cross,
            "note": self.note,
            **extra,
        }

    @classmethod
    def load(
        cls, path: str | Path, features: tuple[str, ...] = FEATURES, refit: str = "python -m bench.calibrate"
    ) -> RefusalModel:
        """A model file of this version over `features` (the refusal model's by default; `rag.verify` loads its claim
        model with its own), or one line naming the command that refits it."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RefusalModelError(f"cannot read the model {path} ({exc}): reinstall the project") from exc
        return cls.from_dict(data, path, features, refit)

    @classmethod
    def from_dict(cls, data: dict, path: str | Path, features: tuple[str, ...], refit: str) -> RefusalModel:
        nested = data.get("with_reader")
        if (
            data.get("version") != MODEL_VERSION
            or tuple(data.get("features", ())) != features
            or not (nested is None or isinstance(nested, dict))
            or not all(_is_band(data.get(k, EVERY)) for k in ("band", "band_cross"))
        ):
            raise RefusalModelError(
                f"model {path} is not version {MODEL_VERSION} with this project's features: refit it with `{refit}`"
            )
        with_reader = cls.from_dict(nested, path, READER_FEATURES, refit) if nested is not None else None
        return cls(
            tuple(data["features"]),
            [float(x) for x in data["mean"]],
            [float(x) for x in data["scale"]],
            [float(x) for x in data["coef"]],
            float(data["intercept"]),
            float(data["threshold"]),
            float(data.get("threshold_cross", -1.0)),
            data.get("note", ""),
            float(data.get("partial_cut", 1.1)),
            float(data.get("partial_cut_cross", 1.1)),
            with_reader,
            tuple(float(x) for x in data.get("band", EVERY)),
            tuple(float(x) for x in data.get("band_cross", EVERY)),
        )
