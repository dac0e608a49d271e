"""What an answer is (`Answer`, `Citation`) and how the extractive one is chosen: every sentence of the retrieved
chunks scored against the question (`score_sentences`), and the best quoted with [n] markers (`ExtractiveAnswerer`).
The path a question takes, and the composers, are in `rag.chain`."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from langchain_core.documents import Document

from rag.chunking import max_sentence_chars
from rag.crosslingual import coverage
from rag.language import is_cross_lingual, latin_share
from rag.lexical import analyze, strip_controls
from rag.retrieve import SearchIndex

NOT_FOUND_EN = "The indexed articles do not cover this question, so there is no answer to give."
NOT_FOUND_AR = "لا تتناول المقالات المفهرسة هذا السؤال، لذلك لا توجد إجابة."


@dataclass(kw_only=True)
class Citation:
    """A checkable source: `quote == article_text(doc_id)[start:end]`."""

    n: int
    doc_id: str
    title: str
    source: str
    quote: str
    start: int
    end: int
    passage: str  # the retrieved chunk the quote sits in, for context
    score: float
    date: str = ""  # the article's date as stored ("" when unknown)
    outlet: str = ""  # the newspaper (a record's `source`), else the file's folder or name
    url: str = ""  # the article's link, where its record has one
    also_in: list[str] = field(default_factory=list)  # other articles (syndicated copies) holding the same quote
    dates: list[dict] = field(default_factory=list)  # relative days in the quote, resolved: {text, date, start, end}


@dataclass(kw_only=True)
class Answer:
    question: str
    text: str
    found: bool
    citations: list[Citation] = field(default_factory=list)
    confidence: float = 0.0  # the refusal model's probability that the corpus answers the question
    searched_question: str = ""  # what was searched: the question, or a follow-up with its context
    composer: str = "extractive"  # "extractive" (quoted sentences) or "llm" (a local LLM's verified answer)
    dropped: list[str] = field(default_factory=list)  # LLM sentences removed: no valid marker, or unsupported
    notice: str = ""  # one line when the LLM's answer could not be shown and the extractive one is
    missing: str = ""  # for a refusal: one line on what the articles lack (a name, an event, a time)
    partial: str = ""  # for an answer whose quotes miss much of the question: one line saying what they lack
    related: list[dict] = field(default_factory=list)  # for a refusal: the closest articles, as reading, not answer
    short: dict = field(default_factory=dict)  # the number, date or name asked for, in a quote (`rag.short`)
    more: list[Citation] = field(default_factory=list)  # quotes set aside for a sure short answer: Sources only

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Evidence:
    """A sentence (or run of adjacent sentences) chosen to answer from."""

    doc_id: str
    title: str
    source: str
    start: int
    end: int
    quote: str
    passage_start: int  # the chunk the sentence was read in; always covers start..end
    passage_end: int
    score: float
    copies: tuple[str, ...] = ()  # articles holding a copy of the chunk it was read in
    chunk_id: int = -1  # the chunk it was read in (the better one's, for a merged run)


def prepare_question(question: object, max_chars: int) -> str:
    """Control and format characters (zero-width, bidi marks) removed, whitespace collapsed, cut to `max_chars`.

    Raises:
        ValueError: one line a user can read, when nothing is left or when no letter or digit is.
    """
    text = strip_controls(question)[:max_chars] if isinstance(question, str) else ""
    if not text:
        raise ValueError("question is empty: ask something, e.g. answer('why did Albania cut ties?')")
    if not any(c.isalnum() for c in text):
        raise ValueError("ask a question in words: this one has no letters or digits")
    return text


def not_found_text(question: str) -> str:
    return NOT_FOUND_EN if is_cross_lingual(question) else NOT_FOUND_AR


@dataclass(frozen=True)
class EvidenceWeights:
    """How a sentence's score is made (tuned with `python -m bench.tune --evidence`)."""

    sentence: float = 0.85  # cosine between the question and the sentence read in its chunk's context
    chunk: float = 0.15  # cosine of the whole chunk: a sentence in the best chunk is likelier the answer
    overlap: float = 0.1  # IDF-weighted share of the question's terms found in the sentence
    overlap_cross: float = 0.1  # for a Latin-script question: IDF-weighted share of its translated concepts
    answer_type: float = 0.02  # bonus when a sentence has what the question word asks for (a cause, a number)


# What a question word asks for, and the sentence cue that offers it.
WHY = re.compile(r"(?:^|\W)(?:why|لماذا|لم(?:اذا)?|ما سبب|ما هو سبب|ما أسباب|ما اسباب)(?:\W|$)", re.IGNORECASE)
_CAUSE = re.compile(r"بسبب|لأن|لان|نظرا|نظراً|نتيجة|إثر|اثر|بهدف|من أجل|\bbecause\b|\bdue to\b", re.IGNORECASE)
_COUNT = re.compile(
    r"(?:^|\W)(?:how (?:many|much|long|old)|when|what year|كم|متى|في أي عام|في اي عام)(?:\W|$)", re.IGNORECASE
)
_NUMBER = re.compile(r"[0-9٠-٩]|ألف|الف|مليون|مليار|مئة|مائة")


def answer_type_cue(question: str):
    """The pattern a sentence should contain to answer this kind of question, or None."""
    if WHY.search(question):
        return _CAUSE
    if _COUNT.search(question):
        return _NUMBER
    return None


def overlap_scorer(index: SearchIndex, text: str) -> Callable[[str], float]:
    """How much of `text` (a question, or a sentence to verify) a sentence shares, 0..1: for Latin script, the
    IDF-weighted share of its translated concepts (`rag.crosslingual`); else the IDF-weighted share of its terms."""
    if is_cross_lingual(text):
        concepts = index.concepts(text)
        return lambda sentence: coverage(concepts, frozenset(analyze(sentence))) if concepts else 0.0
    weights = index.term_weights(analyze(text))
    total = sum(weights.values())
    if total <= 0:
        return lambda sentence: 0.0
    return lambda sentence: sum(weights.get(t, 0.0) for t in set(analyze(sentence))) / total


def score_sentences(
    index: SearchIndex, question: str, docs: list[Document], weights: EvidenceWeights = EvidenceWeights()
) -> list[Evidence]:
    """Every sentence of the retrieved chunks, scored against the question, best first.

    Word overlap: for an Arabic question, the IDF-weighted share of its terms in the sentence; for a Latin-script
    question, the IDF-weighted share of its translated concepts (`rag.crosslingual`).
    """
    if not docs:
        return []
    qvec = index.query_vector(question)
    cross = is_cross_lingual(question)
    overlap_of = overlap_scorer(index, question)
    overlap_weight = weights.overlap_cross if cross else weights.overlap * (1.0 - latin_share(question))
    cue = answer_type_cue(question)
    best: dict[tuple[str, int], Evidence] = {}
    for doc in docs:
        md = doc.metadata
        ref = index.chunk(md["chunk_id"])
        first, last = ref.first_sentence, ref.last_sentence
        spans = index.sentence_spans(md["doc_id"], first, last)
        span_vecs = index.span_vectors(md["chunk_id"])
        text = index.article_text(md["doc_id"])
        for i, ((start, end), vec) in enumerate(zip(spans, span_vecs, strict=False)):
            quote = text[start:end]
            overlap = overlap_of(quote) if overlap_weight > 0 else 0.0
            score = weights.sentence * float(vec @ qvec) + weights.chunk * md["dense"] + overlap_weight * overlap
            score += md.get("time", 0.0)  # the article fits the day the question names, or is the newest
            if cue is not None and cue.search(quote):
                score += weights.answer_type
            key = (md["doc_id"], first + i)
            if key not in best or best[key].score < score:
                best[key] = Evidence(
                    md["doc_id"],
                    md["title"],
                    md["source"],
                    start,
                    end,
                    quote,
                    md["start"],
                    md["end"],
                    score,
                    tuple(md.get("copies", ())),
                    md["chunk_id"],
                )
    return sorted(best.values(), key=lambda e: -e.score)


def distinct_quotes(evidence: list[Evidence]) -> tuple[list[Evidence], dict[tuple[str, int], list[str]]]:
    """The evidence with each sentence text once (best first), and for each kept sentence the other articles that
    hold the same text: a syndicated story counts once and its copies are named in its citation."""
    first: dict[str, Evidence] = {}
    copies: dict[tuple[str, int], list[str]] = {}
    kept = []
    for e in evidence:
        key = " ".join(e.quote.split())
        if key in first:
            f = first[key]
            if e.doc_id != f.doc_id:
                others = copies.setdefault((f.doc_id, f.start), [])
                if e.doc_id not in others:
                    others.append(e.doc_id)
            continue
        first[key] = e
        kept.append(e)
    return kept, copies


# A bracketed number in an article's own text ("[1]", "【٢】"): it would read as a citation marker in an answer.
_BRACKETED = re.compile(r"[\[【]\s*([0-9٠-٩۰-۹]+(?:\s*[,،]\s*[0-9٠-٩۰-۹]+)*)\s*[\]】]")


def shown_quote(quote: str) -> str:
    """A quote as the answer text shows it: the article's own bracketed numbers in parentheses ("[1]" -> "(1)"), so
    that none can pass for a citation marker. `Citation.quote` keeps the article's characters."""
    return _BRACKETED.sub(r"(\1)", quote)


def quoted_text(citations: list[Citation]) -> str:
    """The quotes with their markers, as the answer text shows them."""
    return " ".join(f"{shown_quote(c.quote)} [{c.n}]" for c in citations)


class ExtractiveAnswerer:
    """The default, offline answerer: quotes the best sentences (at most five, in at most three citations) with [n]
    markers.

    It is called only when the refusal model (`rag.refusal`) judged the question answerable.
    """

    def __init__(
        self,
        article_text: Callable[[str], str],
        max_sentences: int = 3,
        margin: float = 0.06,
        margin_cross: float = 0.2,
        max_quoted: int = 5,
        max_passage: int = 1600,  # 2 x the longest sentence kept whole at the default RAG_CHUNK_CHARS
    ) -> None:
        """Quotes the sentences within `margin` of the best one's score, at most `max_quoted` of them, merged where
        they touch (unless the chunks they were read in would make a passage over `max_passage` characters), in at
        most `max_sentences` citations. Cross-lingual sentence scores lie closer together and
        rank the answer first less often, so a Latin-script question quotes more widely (`margin_cross`; `python
        -m bench.calibrate --grid`: on the news tuning half, evidence in quote was 0.62 with 3 sentences quoted,
        0.72 with 5 and 0.77 with 6; 5 keeps an answer near 800 characters)."""
        self.article_text = article_text
        self.max_sentences = max_sentences
        self.margin = margin
        self.margin_cross = margin_cross
        self.max_quoted = max_quoted
        self.max_passage = max_passage

    def __call__(self, question: str, docs: list[Document], evidence: list[Evidence]) -> Answer:
        if not evidence:
            return Answer(question=question, text=not_found_text(question), found=False)
        margin = self.margin_cross if is_cross_lingual(question) else self.margin
        evidence, copies = distinct_quotes(evidence)
        close = [e for e in evidence if e.score >= evidence[0].score - margin][: self.max_quoted]
        citations: list[Citation] = []
        for e in self._merge_adjacent(close)[: self.max_sentences]:
            passage = self.article_text(e.doc_id)[e.passage_start : e.passage_end]
            n = len(citations) + 1
            citations.append(
                Citation(
                    n=n,
                    doc_id=e.doc_id,
                    title=e.title,
                    source=e.source,
                    quote=e.quote,
                    start=e.start,
                    end=e.end,
                    passage=passage,
                    score=round(e.score, 4),
                    also_in=list(dict.fromkeys([*copies.get((e.doc_id, e.start), []), *e.copies])),
                )
            )
        return Answer(question=question, text=quoted_text(citations), found=True, citations=citations)

    def _merge_adjacent(self, chosen: list[Evidence]) -> list[Evidence]:
        """Sentences of one article with only whitespace between them become one quote (one citation)."""
        merged: list[Evidence] = []
        for e in chosen:
            for i, m in enumerate(merged):
                if m.doc_id != e.doc_id:
                    continue
                text = self.article_text(e.doc_id)
                a, b = (m, e) if m.start <= e.start else (e, m)
                passage = max(m.passage_end, e.passage_end) - min(m.passage_start, e.passage_start)
                if not text[a.end : b.start].strip() and passage <= self.max_passage:
                    start, end = a.start, max(a.end, b.end)
                    merged[i] = Evidence(
                        m.doc_id,
                        m.title,
                        m.source,
                        start,
                        end,
                        text[start:end],
                        min(m.passage_start, e.passage_start),
                        max(m.passage_end, e.passage_end),
                        max(m.score, e.score),
                        tuple(dict.fromkeys(m.copies + e.copies)),
                        m.chunk_id if m.score >= e.score else e.chunk_id,
                    )
                    break
            else:
                merged.append(e)
        return merged


def default_answerer(index: SearchIndex) -> ExtractiveAnswerer:
    """The extractive answerer with the index's settings."""
    s = index.settings
    return ExtractiveAnswerer(
        index.article_text, s.max_sentences, max_quoted=s.max_quoted, max_passage=2 * max_sentence_chars(s)
    )
