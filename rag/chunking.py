"""Split cleaned article text into sentences and overlapping chunks of whole sentences, with offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.settings import Settings

# A sentence ends at . ! ? ؟ ؛ (and runs of them, e.g. ".." or "?!"), plus any closing quotes or brackets,
# when whitespace or the end of text follows; a line break always ends one. "3.5" and "15.7.2022" never
# split because no whitespace follows their dots.
_END = re.compile(r"[.!?؟؛…]+[\"'»”’)\]]*(?=\s|$)|\n")
# Latin abbreviations whose dot is not a sentence end.
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof st jr sr vs etc inc ltd co corp gen col lt sgt capt gov sen rep no fig jan feb mar "
    "apr jun jul aug sep sept oct nov dec u.s u.k u.n e.g i.e a.m p.m".split()
)


@dataclass(frozen=True)
class Span:
    start: int
    end: int


def _is_abbreviation(text: str, dot: int) -> bool:
    word = re.search(r"([A-Za-z](?:[A-Za-z.]*[A-Za-z])?)\.?$", text[max(0, dot - 12) : dot])
    if not word:
        return False
    token = word.group(1).lower()
    return token in ABBREVIATIONS or len(token) == 1  # single initials: "J. Smith"


def split_sentences(text: str, max_chars: int | None = None) -> list[Span]:
    """Sentence spans of `text`, trimmed of surrounding whitespace; `text[s.start:s.end]` is the sentence.

    With `max_chars`, a longer "sentence" (a run-on line, a table, a page with no full stops) is cut into
    pieces of at most `max_chars`, at the last whitespace before the bound, or at the bound when there is none.
    """
    spans: list[Span] = []
    start = 0
    for m in _END.finditer(text):
        if m.group() == "." and _is_abbreviation(text, m.start()):
            continue
        _add(text, start, m.end(), spans, max_chars)
        start = m.end()
    _add(text, start, len(text), spans, max_chars)
    return spans


def _add(text: str, start: int, end: int, spans: list[Span], max_chars: int | None) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    while max_chars and end - start > max_chars:
        cut = start + max_chars
        space = max((text.rfind(ws, start + max_chars // 2, cut + 1) for ws in (" ", "\n", "\t")), default=-1)
        cut = space if space > start else cut
        _add(text, start, cut, spans, None)
        start = cut
        while start < end and text[start].isspace():
            start += 1
    if end > start:
        spans.append(Span(start, end))


@dataclass(frozen=True)
class Chunk:
    start: int
    end: int
    first_sentence: int  # index into the article's sentence list
    last_sentence: int  # inclusive


def chunk_sentences(sentences: list[Span], max_chars: int, overlap: int) -> list[Chunk]:
    """Greedy packing of whole sentences into chunks of at most `max_chars` (a longer sentence stands alone).

    Consecutive chunks share `overlap` sentences, so an answer that straddles a boundary is still whole
    in one chunk.
    """
    chunks: list[Chunk] = []
    i, n = 0, len(sentences)
    while i < n:
        j = i
        while j + 1 < n and sentences[j + 1].end - sentences[i].start <= max_chars:
            j += 1
        chunks.append(Chunk(sentences[i].start, sentences[j].end, i, j))
        if j == n - 1:
            break
        i = max(j + 1 - overlap, i + 1)
    return chunks


def max_sentence_chars(settings: Settings) -> int:
    """The longest sentence kept whole (`rag.settings.Settings`): twice the chunk size, so no chunk (nor quote) is
    much over RAG_CHUNK_CHARS."""
    return 2 * settings.chunk_chars
