"""Offline cross-lingual question answering over Arabic news: `answer()`, `build_index()`, `article_text()`."""

from __future__ import annotations

import threading
from pathlib import Path

from rag.answering import Answer, Citation
from rag.retrieve import SearchIndex
from rag.settings import Settings
from rag.store import BuildStats, IndexMismatch, IndexMissing, build_index
from rag.timeq import DocFilter

__all__ = [
    "Answer",
    "BuildStats",
    "Citation",
    "IndexMismatch",
    "IndexMissing",
    "Settings",
    "answer",
    "article_text",
    "build_index",
    "get_index",
]

MAX_K = 100  # chunks handed to the answerer, at most
_lock = threading.Lock()
_indexes: dict[tuple[Path, Settings], SearchIndex] = {}
_chains: dict[tuple, tuple] = {}


def get_index(index_dir: str | Path | None = None, settings: Settings | None = None) -> SearchIndex:
    """The loaded index at `index_dir` (default: the settings' index folder), read with `settings` (default: from
    the RAG_* environment), loaded once per process for each folder and settings."""
    settings = settings or Settings.from_env()
    path = Path(index_dir).resolve() if index_dir is not None else settings.index_dir.resolve()
    with _lock:
        if (path, settings) not in _indexes:
            if len(_indexes) >= 8:  # many settings tried in one process: forget the oldest index
                _indexes.pop(next(iter(_indexes)))
            _indexes[(path, settings)] = SearchIndex(path, settings)
        return _indexes[(path, settings)]


def answer(
    question: str,
    k: int | None = None,
    index_dir: str | Path | None = None,
    history: list[dict] | None = None,
    since: str | None = None,
    until: str | None = None,
    outlets: list[str] | None = None,
    settings: Settings | None = None,
) -> Answer:
    """Answer `question` (English or Arabic) from the indexed articles, with numbered citations.

    Args:
        question: the question; longer than RAG_MAX_QUESTION_CHARS is truncated.
        k: chunks to retrieve (default RAG_TOP_K).
        index_dir: index folder (default RAG_INDEX_DIR or index/).
        history: the conversation so far, oldest first, as [{"role": "user" | "assistant", "content": str}, ...];
            a follow-up question is then read in its context (the last six turns count).
        since, until: only articles dated on or after / on or before these days (YYYY-MM-DD); undated ones are out.
        outlets: only articles from these outlets (a record's `source`, a folder) or files. A filter that matches
            no article refuses, and says so: it never falls back to the whole corpus.
        settings: every tunable (`rag.settings.Settings`); default: read from the RAG_* environment.

    With RAG_LLM_URL set, a local OpenAI-compatible LLM writes the answer in the question's language and every
    sentence is verified against the passages it cites (`rag.llm`); follow-ups are rewritten by it first.

    Returns:
        Answer with `text` (with [n] markers), `found`, `citations`, `confidence`, `searched_question`, and
        `composer` ("extractive" or "llm"), `dropped` (LLM sentences removed) and `notice` (why the LLM's answer
        was not shown, if it was not).

    Raises:
        ValueError: the question is empty or has no words, k is out of 1..100, the history is not a list of
            such messages, or a date is not YYYY-MM-DD.
        IndexMissing: no index has been built (run `make index`).
    """
    from rag.answering import make_chain, prepare_question
    from rag.conversation import answer_in_context, read_history

    settings = settings or Settings.from_env()
    max_chars = settings.max_question_chars
    question = prepare_question(question, max_chars)  # before loading anything
    if k is not None and not (isinstance(k, int) and 1 <= k <= MAX_K):
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    messages = read_history(history)
    where = DocFilter.of(since, until, outlets)
    index = get_index(index_dir, settings)
    key = (index.index_dir, k, settings, where)
    with _lock:
        if key not in _chains:  # built once per index and filter; the index itself reloads on new builds
            if len(_chains) >= 64:  # many distinct filters: forget the oldest chain
                _chains.pop(next(iter(_chains)))
            composer = None
            if settings.llm_url:
                from rag.llm import LLMComposer

                composer = LLMComposer(index, settings)
            # with an LLM, the chain stops at a Draft: the reading is chosen first, and the LLM called once
            _chains[key] = (make_chain(index, k, answerer=composer, compose=False, where=where), composer)
    chain, composer = _chains[key]
    condense = (lambda q, h: composer.condense(q, h, max_chars)) if composer else None
    accept = composer.rewrite_holds if composer else None
    result = answer_in_context(chain.invoke, question, messages, max_chars=max_chars, condense=condense, accept=accept)
    return result if isinstance(result, Answer) else composer.compose(result)


def article_text(doc_id: str, index_dir: str | Path | None = None) -> str:
    """The cleaned text of an indexed article; every citation's quote is `article_text(doc_id)[start:end]`."""
    return get_index(index_dir).article_text(doc_id)
