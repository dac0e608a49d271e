"""Offline cross-lingual question answering over Arabic news: `answer()`, `build_index()`, `article_text()`."""

from __future__ import annotations

import importlib
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answering import Answer, Citation
    from rag.building import build_index
    from rag.indexer import BuildOptions
    from rag.retrieve import SearchIndex
    from rag.store import BuildStats, IndexMismatch, IndexMissing

__all__ = [
    "Answer",
    "BuildOptions",
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

# The public names that live in submodules, imported when first used: `rag index` then never loads what only
# questions need (LangChain's retriever classes alone take a second to import).
_LAZY = {
    "Answer": "rag.answering",
    "Citation": "rag.answering",
    "build_index": "rag.building",
    "BuildOptions": "rag.indexer",
    "BuildStats": "rag.store",
    "IndexMismatch": "rag.store",
    "IndexMissing": "rag.store",
}


def __getattr__(name: str) -> object:
    """A public name from `_LAZY`, imported from its submodule on first use (PEP 562)."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'rag' has no attribute {name!r}")


MAX_K = 100  # chunks handed to the answerer, at most
_lock = threading.Lock()
_indexes: dict[tuple[Path, Settings], SearchIndex] = {}
_askers: dict[int, object] = {}  # one `rag.asking.Asker` per loaded index (by its id)


def get_index(index_dir: str | Path | None = None, settings: Settings | None = None) -> SearchIndex:
    """The loaded index at `index_dir` (default: the settings' index folder), read with `settings` (default: from
    the RAG_* environment), loaded once per process for each folder and settings."""
    settings = settings or Settings.from_env()
    path = Path(index_dir).resolve() if index_dir is not None else settings.index_dir.resolve()
    with _lock:
        if (path, settings) not in _indexes:
            if len(_indexes) >= 8:  # many settings tried in one process: forget the oldest index
                _indexes.pop(next(iter(_indexes)))
            from rag.retrieve import SearchIndex

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
    from rag.answering import prepare_question
    from rag.asking import Asker
    from rag.conversation import read_history
    from rag.timeq import DocFilter

    settings = settings or Settings.from_env()
    prepare_question(question, settings.max_question_chars)  # a bad question says so before anything is loaded
    if k is not None and not (isinstance(k, int) and 1 <= k <= MAX_K):
        raise ValueError(f"k must be a whole number from 1 to {MAX_K}, not {k!r}")
    read_history(history)
    where = DocFilter.of(since, until, outlets)
    index = get_index(index_dir, settings)
    with _lock:
        asker = _askers.get(id(index))
        if asker is None or asker.index is not index:
            if len(_askers) >= 8:  # as many as the indexes kept
                _askers.clear()
            asker = _askers[id(index)] = Asker(index, settings)
    return asker.ask(question, history, where, k)


def article_text(doc_id: str, index_dir: str | Path | None = None) -> str:
    """The cleaned text of an indexed article; every citation's quote is `article_text(doc_id)[start:end]`."""
    return get_index(index_dir).article_text(doc_id)
