"""Offline tuning of fusion on the bench indexes (tune on XQuAD and ARCD-train; ARCD-test is only reported).

Usage: python -m bench.tune [--shared ../shared] [--evidence | --chunks]
(after `make bench-quick` has built bench/work/*-index). With no flag it caches query/chunk scores for fusion
experiments; --evidence grid-searches the answerer's sentence weights; --chunks compares chunk sizes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import faiss
import numpy as np

from bench.data import arcd, data_dir, xquad
from bench.run import doc_of
from rag.embed import Embedder
from rag.lexical import bm25_terms
from rag.retrieve import SearchIndex
from rag.settings import PROJECT_ROOT, Settings


def load(index_dir: Path, settings: Settings, embedder: Embedder):
    index = SearchIndex(index_dir, settings, embedder=embedder)
    ids = faiss.vector_to_array(index.vectors.id_map)
    vecs = index.vectors.index.reconstruct_n(0, index.vectors.ntotal)  # the stored order, as ids lists it
    order = np.argsort(ids)
    vecs = vecs[order]  # rows now follow index.chunk_ids (sorted)
    docs = [doc_of(index.doc_ids[r]) for r in index.chunk_doc_row]
    return index, vecs, docs


def tune_evidence(root: Path, settings: Settings, emb: Embedder, work: Path, n: int = 300) -> None:
    from langchain_core.runnables import RunnableConfig  # noqa: F401 - ensures langchain is importable

    from bench.data import sample
    from rag.answering import EvidenceWeights, ExtractiveAnswerer, score_sentences
    from rag.retrieve import HybridRetriever

    _, en, ar, _ = xquad(root)
    _, train = arcd(root, "train")
    sets = {
        "xq-en": ("xquad-index", sample(en, n)),
        "xq-ar": ("xquad-index", sample(ar, n)),
        "arcd-train": ("arcd-index", sample(train, n)),
    }
    grid = [
        (EvidenceWeights(sentence=s, chunk=1 - s, overlap=o, answer_type=t), m)
        for s in (0.7, 0.85)
        for o in (0.0, 0.1)
        for t in (0.0, 0.02, 0.03, 0.05)
        for m in (0.03, 0.06)
    ]
    for name, (idx_name, qs) in sets.items():
        index = SearchIndex(work / idx_name, settings, embedder=emb)
        retriever = HybridRetriever(index=index)
        retrieved = [(q, retriever.invoke(q.text)) for q in qs]
        rows = []
        for w, margin in grid:
            answerer = ExtractiveAnswerer(index.article_text, settings.max_sentences, margin)
            hit = first = 0
            for q, docs in retrieved:
                a = answerer(q.text, docs, score_sentences(index, q.text, docs, w))
                quotes = [c.quote for c in a.citations]
                hit += any(q.answer in x for x in quotes)
                first += bool(quotes) and q.answer in quotes[0]
            rows.append((first / len(qs), hit / len(qs), w, margin))
        for first, hit, w, margin in sorted(rows, key=lambda r: -r[0]):
            print(f"{name}: first {first:.3f} any {hit:.3f} margin {margin} {w}", flush=True)


def tune_chunks(root: Path, settings: Settings, emb: Embedder, work: Path, n: int = 300) -> None:
    """Document R@1 and evidence hit for several chunk sizes (each needs its own index, so it re-embeds)."""
    from dataclasses import replace

    from bench.data import sample, write_bulk
    from bench.run import answer_metrics, build, ranked_ours, retrieval_metrics

    contexts, en, ar, _ = xquad(root)
    arcd_contexts, train = arcd(root, "train")
    for size in (250, 400, 600, 1000):
        s = replace(settings, chunk_chars=size)
        for name, ctx, qsets in (("xquad", contexts, {"en": en, "ar": ar}), ("arcd", arcd_contexts, {"train": train})):
            seeds = work / f"{name}-seeds"
            write_bulk(seeds, f"{name}.jsonl", ctx)
            index_dir = work / f"chunks-{size}-{name}"
            stats = build(seeds, index_dir, s, emb)
            index = SearchIndex(index_dir, s, embedder=emb)
            for label, qs in qsets.items():
                qs = sample(qs, n)
                r = retrieval_metrics(lambda q, i=index: ranked_ours(i, q), qs)
                a = answer_metrics(index, qs)
                print(
                    f"chunk_chars {size} {name}-{label}: chunks {stats.chunks} R@1 {r['R@1']:.3f} "
                    f"evidence hit {a['evidence hit']:.3f} first {a['first-citation hit']:.3f}",
                    flush=True,
                )


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--shared", default=None)
    p.add_argument("--evidence", action="store_true")
    p.add_argument("--chunks", action="store_true", help="compare chunk sizes (re-embeds the bench corpora)")
    args = p.parse_args(argv)
    root = data_dir(args.shared)
    settings = Settings.from_env()
    emb = Embedder(str(settings.model), settings.precision)
    work = PROJECT_ROOT / "bench" / "work"
    if args.evidence:
        tune_evidence(root, settings, emb, work)
        return 0
    if args.chunks:
        tune_chunks(root, settings, emb, work)
        return 0
    _contexts, en, ar, _ = xquad(root)
    _, train = arcd(root, "train")
    _, test = arcd(root, "test")
    sets = {
        "xq-en": ("xquad-index", en),
        "xq-ar": ("xquad-index", ar),
        "arcd-train": ("arcd-index", train),
        "arcd-test": ("arcd-index", test),
    }
    cache: dict = {}
    for name, (idx_name, qs) in sets.items():
        if idx_name not in cache:
            cache[idx_name] = load(work / idx_name, settings, emb)
        index, vecs, docs = cache[idx_name]
        q = np.vstack([emb.embed_query(x.text) for x in qs])
        dense = q @ vecs.T
        lex = np.vstack([index.bm25.scores(bm25_terms(x.text)) for x in qs])
        np.savez(
            work / f"tune-{name}.npz",
            dense=dense,
            lex=lex,
            docs=np.array(docs),
            gold=np.array([x.context_id for x in qs]),
            latin=np.array([x.text.isascii() for x in qs]),
        )
        print(name, dense.shape, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
