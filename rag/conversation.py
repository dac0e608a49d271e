"""Follow-up questions read in the context of the conversation, with no LLM: history in, searched question out.

A follow-up ("And how many were wounded?") is searched together with the previous user question, in the style of
historical query expansion (HQE). Whether a question is read alone or with its context is decided by the refusal
model itself: both readings go through the pipeline and the one it finds more answerable wins, with a head start for
questions that lean on the conversation (a pronoun, "and ...", a very short question). So a self-contained question
stays itself after an unrelated history, and a follow-up that retrieves nothing alone takes its context. The head
start was chosen on the news dev set's tuning pairs (`python -m bench.calibrate --followups`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from rag.language import is_cross_lingual
from rag.lexical import query_words, strip_controls

MAX_MESSAGES = 12  # the last six turns are read; older ones are dropped
MAX_MESSAGE_CHARS = 4000  # each message is cut to this many characters
HISTORY_FORMAT = (
    "history must be a list of {'role': 'user' | 'assistant', 'content': str or text parts} messages, oldest first"
)

# Words by which a question points back into the conversation.
_EN_LEAD = re.compile(r"^(?:and|also|so|but|what about|how about)\b", re.IGNORECASE)
_EN_CUES = re.compile(
    r"\b(?:he|she|it|its|it's|they|them|their|theirs|his|her|hers|him|these|those|the same|such)\b", re.I
)
_AR_LEAD = re.compile(r"^(?:و|ف)(?:ماذا|ما|من|كم|متى|أين|اين|لماذا|هل|كيف)")
_AR_CUES = re.compile(
    # a pronoun, but not the one of a question word ("من هو رئيس الوزراء؟" asks "who is", it points back at nothing)
    r"(?:^|(?<!من)(?<!ما)\s)(?:هو|هي|هم|هما|هن|ذلك|تلك|هذا|هذه|هؤلاء|هناك|حينها|"
    r"عنه|عنها|عنهم|منه|منها|منهم|له|لها|لهم|فيه|فيها)(?:\s|[؟?.!،]|$)"
)
SHORT_QUESTION_WORDS = 1  # a question with this few content words ("Why?", "And the wounded?") leans on it
# A question this long names what it is about, so its pronouns point inside it ("Why did Gill Pharaoh ... decide to
# end her life?"). News dev tuning half: follow-ups had at most 10 content words; stand-alone questions with a
# pronoun, at least 12.
SELF_CONTAINED_WORDS = 11


@dataclass(frozen=True)
class Message:
    role: str
    content: str


def read_history(history: object) -> list[Message]:
    """Validate and bound a history: a list of {"role", "content"} dicts (Gradio's messages format, OpenAI's).

    Raises:
        ValueError: one line naming the expected format.
    """
    if history is None:
        return []
    if not isinstance(history, list | tuple):
        raise ValueError(f"{HISTORY_FORMAT}; got {type(history).__name__}")
    messages = []
    for i, m in enumerate(history):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            raise ValueError(f"{HISTORY_FORMAT}; message {i} is {str(m)[:80]!r}")
        try:
            text = content_text(m.get("content"))
        except ValueError as exc:
            raise ValueError(f"{HISTORY_FORMAT}; message {i}: {exc}") from None
        messages.append(Message(m["role"], text[:MAX_MESSAGE_CHARS]))
    return messages[-MAX_MESSAGES:]


def content_text(content: object) -> str:
    """A message's text: a string, or OpenAI content parts ([{"type": "text", "text": ...}]) joined by spaces.

    Raises:
        ValueError: for anything else (an image part, a number), in one line.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) for p in content):
        if any(p.get("type") != "text" or not isinstance(p.get("text"), str) for p in content):
            raise ValueError("only text content parts are supported")
        return " ".join(p["text"] for p in content)
    raise ValueError("content must be a string or a list of text parts")


def leans_on_context(question: str) -> bool:
    """A leading "and", very few content words, or a pronoun or demonstrative in a question too short to name what
    it is about."""
    words = len(query_words(question))
    if words <= SHORT_QUESTION_WORDS or _EN_LEAD.search(question) or _AR_LEAD.search(question):
        return True
    return words < SELF_CONTAINED_WORDS and bool(_EN_CUES.search(question) or _AR_CUES.search(question))


def _earlier_questions(question: str, history: list[Message]) -> list[str]:
    """The conversation's user questions before this one, oldest first (a history that already ends with this
    question does not count it twice)."""
    earlier = [e for e in (strip_controls(m.content) for m in history if m.role == "user") if e]
    return earlier[:-1] if earlier and earlier[-1] == question.strip() else earlier


def context_question(earlier: list[str], question: str, max_chars: int = 2000) -> str | None:
    """The question with the last of the `earlier` user questions (and the one before it, when that one leaned on
    its own context) appended, cut to `max_chars`; None when there is no earlier user question."""
    if not earlier:
        return None
    context = [earlier[-1]]
    if len(earlier) > 1 and leans_on_context(earlier[-1]):
        context.insert(0, earlier[-2])
    return f"{question} ({' '.join(context)})"[:max_chars]


def answer_in_context(
    ask: Callable[[str], object],
    question: str,
    history: list[Message],
    head_start: float = 1.0,
    max_chars: int = 2000,
    condense: Callable[[str, list[Message]], str | None] | None = None,
    accept: Callable[[str, str, list[Message], object], bool] | None = None,
):
    """Ask the question alone and with its context; keep the reading the refusal model finds more answerable,
    giving the context reading `head_start` when the question leans on the conversation. A question that does not
    lean on it is answered alone when it is refused alone or asked in the other language than the last question.
    With the default, a question that leans on the conversation takes its context whenever that reading is
    answered at all: short follow-ups alone often match something confidently and wrongly ("When was it signed?").

    `ask` is the answering chain's `invoke`: it takes the question, or {"question", "search"}, and returns an Answer
    with `confidence` and `searched_question`.

    With `condense` (an LLM's rewrite of a follow-up as a standalone question, `rag.llm.LLMComposer.condense`), a
    question with a history is searched and answered as its rewrite, when `accept(rewrite, question, history,
    result)` holds (`rag.llm.LLMComposer.rewrite_holds`); when the rewrite fails or is not accepted, as above.
    """
    earlier = _earlier_questions(question, history)
    expanded = context_question(earlier, question, max_chars)
    if expanded is not None and condense is not None:
        standalone = condense(question, history)
        if standalone:
            result = ask({"question": standalone, "search": standalone, "asked": question})
            if accept is None or accept(standalone, question, history, result):
                return result
    alone = ask(question)
    leans = leans_on_context(question)
    switches = bool(earlier) and is_cross_lingual(earlier[-1]) != is_cross_lingual(question)  # Arabic after English
    if expanded is None or (not leans and (not alone.found or switches)):
        # a question that stands alone and is refused alone stays refused: the earlier question's words would
        # make near-topic quotes look answerable ("How many died in Aleppo?" after a question about Albania);
        # one asked in the other language than the last question starts afresh
        return alone
    with_context = ask({"question": question, "search": expanded})
    bonus = head_start if leans and with_context.found else 0.0
    return with_context if with_context.confidence + bonus > alone.confidence else alone
