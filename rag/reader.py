"""The short-answer reader: the embedding model reading a question with a quote, pointing at the answer's words.

It reads "query: <question> passage: <quote>" through the model's layers in numpy (`rag.query_encoder`), the top
ones replaced by trained ones, and a start/end head scores every token of the quote: the best span, up to
`MAX_SPAN_TOKENS`, against the first token's "not here" score. The trained layers and head are built by
`python -m bench.train_reader` (`make reader`) from the benchmarks' tuning data into `models/reader/`; without
that file there is no reader, and short answers come from the number, date and name recognisers alone.
"""

from __future__ import annotations

import re
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rag.names import romanize
from rag.query_encoder import QueryEncoder, layer_weights, read_safetensors
from rag.short import ShortAnswer, asks_for, candidates_in

READER_FILE = "reader.safetensors"
MAX_SPAN_TOKENS = 24
SEEN_MAX = 64  # (question, passage) readings kept
_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.")
# A span is given as the short answer from this score (its start and end logits less the "not here" ones), the
# lowest at which wrong short answers stay under 10% of the fact questions of every tuning group (XQuAD's second
# quarter, F1 < 0.5: Arabic 0.08, English 0.08; news dev tuning half: 0.00, 0.00), with 0.18 / 0.17 / 0.09 / 0.60
# right: `python -m bench.shortbench --half tune --sweep-reader`. Ungated, 0.42 and 0.47 of XQuAD were wrong.
READER_GATE = 9.0
# Quotes read, first citations first: the first holds the evidence far more often than the next ones. Reading three
# (the best span of any) at the same gate gave news English right 0.14 / wrong 0.05 against 0.09 / 0.00, XQuAD
# about the same, at three times the cost: one it is.
READER_QUOTES = 1
# Questions that ask for a reason or a manner, not a fact: no short answer, and the cause sentence stays whole.
_NOT_FACT = re.compile(
    r"(?:^|\W)(?:why|how(?! (?:many|much|long|old|far|big|large|tall|often))|explain|describe|what caused|"
    r"(?:what is|what was|what's) the (?:reason|cause)|for what reason|what led to|"
    r"لماذا|لم|كيف|اشرح|ما (?:هو |هي )?(?:سبب|أسباب|اسباب|السبب)|ما الذي (?:أدى|ادى|دفع)|بسبب ماذا)(?:\W|$)",
    re.IGNORECASE,
)
# Amounts asked for without "how many": a share, a percentage, a number of ... (`rag.short.asks_for` reads the rest).
_ASKS_AMOUNT = re.compile(
    r"(?:^|\W)(?:what|which) (?:share|percentage|proportion|number|amount|rate)|"
    r"(?:ما|كم) (?:هي |هو )?(?:نسبة|عدد|حجم|مقدار|قيمة)(?:\W|$)",
    re.IGNORECASE,
)
_EDGE = " \t\n\u00a0،,.؛;:!؟?\"'«»()[]{}-–—"


def prompt_for(question: str) -> str:
    """What stands before the passage: the question with the model's query prompt."""
    return f"query: {' '.join(question.split())} passage: "


@dataclass
class Span:
    passage: int  # which of the passages read
    start: int  # its characters in that passage
    end: int
    score: float  # the span's start and end logits less the "not here" ones: > 0 when it beats "not here"


class Reader:
    """The trained layers and head of `folder`/reader.safetensors over `encoder`'s lower layers."""

    def __init__(self, encoder: QueryEncoder, folder: str | Path) -> None:
        raw = read_safetensors(Path(folder) / READER_FILE)
        indexes = sorted({int(m.group(1)) for k in raw if (m := _LAYER.match(k))})
        if not indexes or indexes != list(range(indexes[0], len(encoder.layers))) or "qa.weight" not in raw:
            raise ValueError(f"{folder}/{READER_FILE}: not a reader for this model (run `make reader`)")

        def w(name: str) -> np.ndarray:
            return np.ascontiguousarray(raw[name], dtype=np.float32)

        self.encoder = encoder
        self.layers = encoder.layers[: indexes[0]] + [layer_weights(w, f"encoder.layer.{i}.") for i in indexes]
        self.head, self.head_bias = w("qa.weight").T.copy(), w("qa.bias")
        # (question, passage) -> (start, end, score): the refusal decision and the short answer read the same
        # first sentence of one question, and it is read once
        self._seen: OrderedDict[tuple[str, str], tuple[int, int, float]] = OrderedDict()
        self._lock = threading.Lock()

    def read(self, question: str, passages: list[str]) -> list[Span]:
        """The best span of each passage (None-free: a passage without tokens gets a score of -inf)."""
        with self._lock:
            missing = [p for p in dict.fromkeys(passages) if (question, p) not in self._seen]
        found = dict(zip(missing, self._read(question, missing), strict=True)) if missing else {}
        with self._lock:
            for p, span in found.items():
                self._seen[(question, p)] = span
            out = [Span(i, *(found.get(p) or self._seen[(question, p)])) for i, p in enumerate(passages)]
            while len(self._seen) > SEEN_MAX:
                self._seen.popitem(last=False)
        return out

    def forget(self) -> None:
        """Empty the readings kept (for timing a question as if it were asked first)."""
        with self._lock:
            self._seen.clear()

    def _read(self, question: str, passages: list[str]) -> list[tuple[int, int, float]]:
        batch = self.encoder.tokens.encode(passages, prompt_for(question))
        logits = self.encoder.run(batch, self.layers) @ self.head + self.head_bias  # [n, length, 2]
        out = []
        for i, text in enumerate(passages):
            offsets = batch.offsets[i]
            usable = (offsets[:, 1] > offsets[:, 0]) & (offsets[:, 0] >= 0) & (batch.attention_mask[i] > 0)
            at = np.flatnonzero(usable)
            if not len(at):
                out.append((0, 0, float("-inf")))
                continue
            starts, ends = logits[i, at, 0], logits[i, at, 1]
            pair = starts[:, None] + ends[None, :]
            gap = at[None, :] - at[:, None]
            pair[(gap < 0) | (gap >= MAX_SPAN_TOKENS)] = -np.inf
            a, b = np.unravel_index(int(np.argmax(pair)), pair.shape)
            null = logits[i, 0, 0] + logits[i, 0, 1]
            start, end = _trim(text, int(offsets[at[a], 0]), int(offsets[at[b], 1]))
            out.append((start, end, float(pair[a, b] - null)))
        return out


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without spaces and punctuation at its edges."""
    while start < end and text[start] in _EDGE:
        start += 1
    while end > start and text[end - 1] in _EDGE:
        end -= 1
    return start, end


def asked_kind(question: str) -> str:
    """What the question asks for as `rag.short.asks_for` reads it, and "number" for a share, a percentage or a
    number of something."""
    return asks_for(question) or ("number" if _ASKS_AMOUNT.search(question) else "")


def asks_fact(question: str) -> bool:
    """Whether the question asks for a fact the reader can point at (not why, not how)."""
    return not _NOT_FACT.search(question)


def load_reader(encoder: QueryEncoder, folder: str | Path) -> Reader | None:
    """The reader in `folder`, or None when it has not been built; a damaged file is named once on stderr."""
    if not (Path(folder) / READER_FILE).is_file():
        return None
    try:
        return Reader(encoder, folder)
    except (OSError, ValueError, KeyError) as exc:
        print(f"warning: short-answer reader not used: {exc}", file=sys.stderr)
        return None


def read_short(
    reader: Reader,
    question: str,
    citations: list,
    article_text: Callable[[str], str],
    published: Callable[[str], str | None] = lambda doc_id: None,
) -> ShortAnswer | None:
    """The reader's answer in the first quotes, or None below `READER_GATE`. Where it covers a value of the kind
    asked for (`asked_kind`), that value is the answer, typed (a number with its unit, an ISO date, a name in Latin
    letters); otherwise the span as read (kind "span")."""
    cites = citations[:READER_QUOTES]
    if not cites:
        return None
    texts = [article_text(c.doc_id) for c in cites]
    spans = reader.read(question, [t[c.start : c.end] for t, c in zip(texts, cites, strict=True)])
    best = max(spans, key=lambda x: x.score)
    if best.score < READER_GATE or best.end <= best.start:
        return None
    kind = asked_kind(question)
    c, text = cites[best.passage], texts[best.passage]
    a, b = c.start + best.start, c.start + best.end
    typed = [s for s in candidates_in(kind, question, c, text, published) if s.start < b and a < s.end] if kind else []
    if kind in ("number", "date") and not typed:  # a number or a date asked for, and the span holds none
        return None
    if typed:
        short = max(typed, key=lambda s: min(b, s.end) - max(a, s.start))
    else:
        short = ShortAnswer(text[a:b], a, b, c.n, c.doc_id, "span", text[a:b], "", text[a:b])
    short.score = short.lead = round(best.score, 4)
    short.by = "reader"
    if short.kind == "person":
        short.label = romanize(short.text)
    return short
