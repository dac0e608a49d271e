"""One path for a question, whatever asks it: `answer()`, the web chat, `rag ask`, `rag chat`, the APIs and the bench.

`Asker.decide` reads the question in the context of the conversation (`rag.conversation`), retrieves and decides under
the index lock (`rag.chain.decision_chain`), and `Asker.ask` / `Asker.stream` hand the decision to the composer:
the extractive one, or a local LLM's whose every sentence is verified (`rag.llm`). `small_print` writes the lines a
front end shows under an answer.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

from rag.answering import Answer, prepare_question
from rag.chain import Decision, ExtractiveComposer, decision_chain
from rag.conversation import answer_in_context, read_history
from rag.refusal import RefusalModel
from rag.retrieve import SearchIndex
from rag.settings import Settings
from rag.timeq import DocFilter

MAX_CHAINS = 64  # chains kept per asker, one per filter and k: many distinct filters forget the oldest


class Asker:
    """Answers questions over one index with one set of settings; safe to share between threads."""

    def __init__(self, index: SearchIndex, settings: Settings | None = None, refusal: RefusalModel | None = None):
        self.index = index
        self.settings = settings or index.settings
        self.refusal = refusal or RefusalModel.load(self.settings.refusal_model)  # read once, shared by every chain
        if self.settings.llm_url:  # a local LLM answers in the asker's language; its citations are verified
            from rag.llm import LLMComposer

            self.composer = LLMComposer(index, self.settings)
        else:
            self.composer = ExtractiveComposer()
        self._chains: dict = {}
        self._lock = threading.Lock()

    def _chain(self, where: DocFilter | None, k: int | None):
        key = (where, k)
        with self._lock:
            if key not in self._chains:
                if len(self._chains) >= MAX_CHAINS:
                    self._chains.pop(next(iter(self._chains)))
                self._chains[key] = decision_chain(self.index, k, self.composer, self.refusal, where)
            return self._chains[key]

    def decide(
        self, question: str, history: list | None = None, where: DocFilter | None = None, k: int | None = None
    ) -> Decision:
        """The decision for `question` read in the context of `history` (messages, oldest first), among the articles
        `where` admits (all when None).

        Raises:
            ValueError: one line, for an empty question or a malformed history.
        """
        max_chars = self.settings.max_question_chars
        question = prepare_question(question, max_chars)
        messages = read_history(history)
        condense = getattr(self.composer, "condense", None)
        return answer_in_context(
            self._chain(where, k).invoke,
            question,
            messages,
            max_chars=max_chars,
            condense=(lambda q, h: condense(q, h, max_chars)) if condense else None,
            accept=getattr(self.composer, "rewrite_holds", None),
        )

    def ask(
        self, question: str, history: list | None = None, where: DocFilter | None = None, k: int | None = None
    ) -> Answer:
        """The Answer to `question` (see `decide`)."""
        return self.composer.compose(self.decide(question, history, where, k))

    def stream(self, decision: Decision) -> Iterator[str | Answer]:
        """The answer's text as it grows (nothing unverified), then the Answer."""
        return self.composer.stream(decision)


def small_print(answer: Answer) -> list[str]:
    """The lines under an answer: why an LLM's answer is not shown, how many of its sentences were dropped, and the
    question as it was searched when that differs from the one typed."""
    lines = []
    if answer.notice:
        lines.append(f"note: {answer.notice}")
    if answer.composer == "llm" and answer.dropped:
        lines.append(f"{len(answer.dropped)} sentence(s) of the LLM's answer dropped: no passage supported them")
    if answer.searched_question not in ("", answer.question):
        lines.append(f"searched as: {answer.searched_question}")
    return lines
