"""The question's path through one index: retrieve -> select evidence -> decide, ending in a `Decision`, and the
composers that turn a decision into the `Answer` (`compose`) or stream it (`stream`): the extractive one here, a
local LLM's in `rag.llm`. An extractive answer is made ready to show here too: dated citations, the short answer
first, tight quotes (`present`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from langchain_core.runnables import Runnable, RunnableLambda

from rag.answering import (
    Answer,
    Citation,
    Evidence,
    default_answerer,
    not_found_text,
    overlap_scorer,
    quoted_text,
    score_sentences,
)
from rag.dates import relative_days
from rag.language import is_cross_lingual
from rag.quotes import tight_span
from rag.reader import asks_fact, read_short
from rag.refusal import RefusalModel, after_corpus, decision_features, explain_refusal, partial_note
from rag.retrieve import HybridRetriever, SearchIndex
from rag.short import asks_for, names_subject, question_matchers, short_answer, short_line, subject_role
from rag.timeq import DocFilter, parse_date


def stamp_citations(index: SearchIndex, citations: list[Citation]) -> None:
    """Give each citation its article's date and link."""
    for c in citations:
        c.date = index.dates.get(c.doc_id, "")
        c.dates = relative_days(index.article_text(c.doc_id), parse_date(c.date), c.start, c.end)
        c.outlet = index.outlets.get(c.doc_id, c.source)
        c.url = index.urls.get(c.doc_id, "")


def with_short_answer(index: SearchIndex, answer: Answer, question: str) -> str:
    """Find the fact `question` asks for in the answer's quotes, keep it in `answer.short` and return the line that
    puts it first ("24 hours — «24 ساعة» [1]", "Sunday 26 July 2015 — «أمس (الأحد)» [1]"), or "" when none is sure
    enough. The reader (`rag.reader`, where built) points at the answer; without it, or when it is unsure, the
    number, date and name recognisers look for the value asked for (`rag.short`)."""
    reader = index.reader if asks_fact(question) else None
    short = read_short(reader, question, answer.citations, index.article_text, index.dates.get) if reader else None
    if short is None and asks_for(question):
        matchers = question_matchers(index, question)
        short = short_answer(question, answer.citations, index.article_text, matchers, index.dates.get)
    role = subject_role(question, index.concepts(question)) if short is not None else None
    if short is None or (role and names_subject(short.text, answer.citations, index.article_text, role)):
        return ""
    answer.short = short.to_dict()
    return short_line(short, is_cross_lingual(question))


# A quote is cut only around a short answer this sure (its lead over other values): cut around every short answer,
# the wrong ones (5-8%) cut their citation's evidence away (ARCD-test: 5 of 702 questions); from a lead of 0.1 the
# tuning halves lose none (evidence in quote: XQuAD 0.927, news 0.711, as with no cut).
TIGHT_LEAD = 0.1


def tighten_quotes(index: SearchIndex, answer: Answer, question: str) -> None:
    """Cut the quote that holds the short answer, when longer than RAG_QUOTE_CHARS, to its clauses around it that
    hold the most of the question (`rag.quotes`). Only there is it known where the answer is: cutting every long
    quote to the clauses that hold the question's words left out the answer, which often sits in the next clause
    (tuning halves, evidence in quote: news English 0.69 -> 0.56, XQuAD English 0.94 -> 0.85). Relative days
    outside the cut are dropped with it. `python -m bench.shortbench --quotes` gives the quote shape by setting."""
    limit = index.settings.quote_chars
    if limit <= 0 or not answer.short or answer.short["lead"] < TIGHT_LEAD:
        return
    c = next(c for c in answer.citations if c.n == answer.short["citation"])
    text, keep = index.article_text(c.doc_id), (answer.short["start"], answer.short["end"])
    start, end = tight_span(text, c.start, c.end, overlap_scorer(index, question), limit, keep)
    c.start, c.end, c.quote = start, end, text[start:end]
    c.dates = [d for d in c.dates if start <= d["start"] and d["end"] <= end]


# A short answer from the reader this sure is shown with its own quote alone; the other quotes move to `Answer.more`
# (the Sources panel's "More from the articles"): the lowest gate at which evidence in quote stays within 0.01 of
# every quote kept on each tuning group (XQuAD English 0.89 against 0.90 at 10; 0.88 at 9, the reader's own gate).
# `python -m bench.shortbench --half tune --sweep-reader` prints both.
ALONE_GATE = 10.0


def keep_holding(answer: Answer) -> None:
    """Only the citation that holds a sure reader answer stays in the answer; the others go to `answer.more`."""
    if answer.short.get("by") != "reader" or answer.short["lead"] < ALONE_GATE:
        return
    n = answer.short["citation"]
    answer.more = [c for c in answer.citations if c.n != n]
    answer.citations = [c for c in answer.citations if c.n == n]


def present(index: SearchIndex, answer: Answer, question: str, asked: str, partial_cut: float | None = None) -> None:
    """An extractive answer made ready to show: its citations dated, the short answer found (for the question as
    `asked`), only the quote that holds a sure one kept, long quotes cut to the clauses that hold `question`, and the
    text written from them. With `partial_cut`, quotes that miss much of `question` are flagged partial first
    (`rag.refusal.partial_note`), and then no short answer is put first: the quotes do not say what it would assert."""
    note = partial_note(index, question, answer.citations, partial_cut) if partial_cut is not None else ""
    stamp_citations(index, answer.citations)
    line = "" if note else with_short_answer(index, answer, asked)
    keep_holding(answer)
    tighten_quotes(index, answer, question)
    answer.text = "\n".join(t for t in (line, quoted_text(answer.citations)) if t)
    flag_partial(answer, note)


@dataclass
class Decision:
    """What the chain decided under the index lock, for a composer to turn into the Answer: the reading of the
    question, the refusal model's verdict, and the extractive answer (the answer itself, or the refusal; a generative
    composer's fallback). `passages` are what a generative composer asked for (`passages(evidence)`), read
    under the same lock; the LLM itself is called after it is released."""

    answer: Answer  # carries the question as typed, what was searched and the confidence
    question: str  # what is answered: the question, or an LLM's standalone rewrite of a follow-up
    passages: list = field(default_factory=list)

    @property
    def found(self) -> bool:
        return self.answer.found

    @property
    def asked(self) -> str:
        return self.answer.question

    @property
    def searched(self) -> str:
        """What was searched and decided on: the question, or a follow-up with its context."""
        return self.answer.searched_question

    @property
    def confidence(self) -> float:
        return self.answer.confidence


class ExtractiveComposer:
    """The default, offline composer: the decision's quoted answer (or refusal) as it is."""

    def passages(self, evidence: list[Evidence]) -> list:
        return []

    def compose(self, decision: Decision) -> Answer:
        return decision.answer

    def stream(self, decision: Decision, step: int = 6) -> Iterator[str | Answer]:
        """Growing prefixes of the answer's text (`step` words at a time, so it appears as it is read), then the
        Answer: every prefix is the article's own words, nothing to verify."""
        words = decision.answer.text.split(" ")
        for i in range(step, len(words), step):
            yield " ".join(words[:i])
        yield decision.answer


def refused(index: SearchIndex, asked: str, search: str, docs: list, where: DocFilter | None) -> Answer:
    """The refusal of a question the articles do not answer: what they lack, and the closest articles."""
    missing, related = explain_refusal(index, search, docs, where)
    text = f"{not_found_text(asked)} {missing}".strip()
    return Answer(question=asked, text=text, found=False, missing=missing, related=related)


def flag_partial(answer: Answer, note: str) -> None:
    """An answer whose quotes hold the question's topic but not what it asks says so first (`note`; "" for none)."""
    answer.partial = note
    if note:
        answer.text = f"{note}\n{answer.text}"


def decision_chain(
    index: SearchIndex,
    k: int | None = None,
    composer=None,
    refusal: RefusalModel | None = None,
    where: DocFilter | None = None,
    extractive: Callable | None = None,
) -> Runnable:
    """retrieve -> select evidence -> decide, as a LangChain runnable that ends in a `Decision`.

    It takes the question string, or {"question": ..., "search": ...} for a follow-up: the search text (the
    question with its context) retrieves and decides; the question alone picks the sentences to quote, so the
    context does not pull the quote toward the earlier answer. An optional "asked" key is the question as typed
    (when "question" is an LLM's standalone rewrite of it); the Answer carries it. `extractive` picks the quotes
    (the index's `ExtractiveAnswerer` by default); `composer.passages(evidence)` is called under the index lock
    for an answerable question (`rag.llm.LLMComposer` reads its passages there).
    """
    retriever = HybridRetriever(index=index, k=k, where=where)
    quote = extractive or default_answerer(index)
    model = refusal or RefusalModel.load(index.settings.refusal_model)

    def unpack(x: str | dict) -> dict:
        if isinstance(x, str):
            return {"question": x, "search": x, "asked": x}
        return {"question": x["question"], "search": x["search"], "asked": x.get("asked") or x["question"]}

    def retrieve(x: dict) -> dict:
        with index.lock:  # the chunks and the generation they come from, read together
            return {**x, "docs": retriever.invoke(x["search"]), "generation": index.generation}

    def select(x: dict) -> dict:
        evidence = score_sentences(index, x["question"], x["docs"])
        decides, features = decision_features(index, model, x["search"], x["docs"], evidence)
        return {**x, "evidence": evidence, "confidence": decides.probability(features), "model": decides}

    def finish(x: dict) -> Decision:
        question, asked = x["question"], x["asked"]
        cross, decides = is_cross_lingual(x["search"]), x["model"]
        passages = []
        if not x["evidence"] or x["confidence"] < decides.threshold_for(cross) or after_corpus(index, x["search"]):
            answer = refused(index, asked, x["search"], x["docs"], where)
        else:
            answer = quote(question, x["docs"], x["evidence"])
            # the quotes were chosen for the question itself (a follow-up's context only retrieved)
            present(index, answer, question, asked, decides.partial_cut_for(cross))
            if composer is not None:
                passages = composer.passages(x["evidence"])
        answer.question, answer.confidence, answer.searched_question = asked, round(x["confidence"], 4), x["search"]
        return Decision(answer, question, passages)

    def decide(x: dict) -> Decision:
        # Offsets and sentence ids belong to one generation: a build that committed since retrieval is read again,
        # and none can swap the index while the answer is made.
        with index.lock:
            if x["generation"] != index.generation:
                x = retrieve(x)
            return finish(select(x))

    return RunnableLambda(unpack) | RunnableLambda(retrieve) | RunnableLambda(decide)


def make_chain(
    index: SearchIndex,
    k: int | None = None,
    composer=None,
    refusal: RefusalModel | None = None,
    where: DocFilter | None = None,
) -> Runnable:
    """`decision_chain` followed by the composer (extractive by default): question in, Answer out."""
    composer = composer or ExtractiveComposer()
    return decision_chain(index, k, composer, refusal, where) | RunnableLambda(composer.compose)
