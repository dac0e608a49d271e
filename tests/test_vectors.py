"""The FAISS index by size: exact below the bound, HNSW or IVF above it, recall against exact search, a kind change
that rebuilds the file from stored vectors without the model; the vectors' encoding on disk, and the conversion of
an index stored in the encoding before it."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace

import faiss
import numpy as np
import pytest
from conftest import ALBANIA_REASON

from rag import indexer, store
from rag.indexer import build_index
from rag.retrieve import SearchIndex
from rag.vectors import (
    VECTOR_ENCODING,
    build_faiss,
    decode_spans,
    decode_vectors,
    encode_spans,
    encode_vector,
    recall_at_k,
    resolve_kind,
)


def test_auto_is_exact_below_the_bound_and_hnsw_above():
    assert resolve_kind("auto", 1000, 200_000) == "flat"
    assert resolve_kind("auto", 200_001, 200_000) == "hnsw"
    assert resolve_kind("ivf", 10, 200_000) == "ivf"
    with pytest.raises(ValueError, match="RAG_FAISS_INDEX"):
        resolve_kind("annoy", 10, 10)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_recall_at_10_against_exact_search(kind):
    # Synthetic, clustered like text vectors: 400 topics, 20,000 unit vectors around them, 200 held-out queries.
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(400, 384)).astype(np.float32)
    points = centres[rng.integers(0, 400, 20_200)] + 0.6 * rng.normal(size=(20_200, 384)).astype(np.float32)
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    data, queries = points[:20_000], points[20_000:]
    ids = np.arange(len(data), dtype=np.int64) * 3 + 7  # chunk ids are not positions
    exact, _ = build_faiss(data, ids, "flat")
    approx, params = build_faiss(data, ids, kind)
    assert params["kind"] == kind
    assert recall_at_k(exact, approx, queries, 10) >= 0.98
    assert np.allclose(approx.reconstruct(int(ids[5])), data[5], atol=0.02)  # lexical candidates need this


def test_changing_the_kind_rebuilds_from_stored_vectors_without_the_model(
    tmp_path, seeds_copy, settings, embedder, monkeypatch
):
    index = tmp_path / "index"
    build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)

    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(indexer, "Embedder", refuse)
    for kind in ("hnsw", "ivf", "flat"):
        kind_settings = replace(settings, faiss_index=kind)
        warnings: list[str] = []
        stats = build_index(seeds_copy, index, settings=kind_settings, progress=False, on_warning=warnings.append)
        assert stats.embedded == 0 and any(f"building a {kind} FAISS index" in w for w in warnings)
        manifest = json.loads((index / store.MANIFEST).read_text())
        assert json.loads(manifest["faiss_index"])["kind"] == kind
        loaded = SearchIndex(index, kind_settings, embedder=embedder)
        inner = faiss.downcast_index(loaded.vectors.index)
        assert {"flat": faiss.IndexScalarQuantizer, "hnsw": faiss.IndexHNSWSQ, "ivf": faiss.IndexIVFScalarQuantizer}[
            kind
        ] is type(inner)
        hits = loaded.search("لماذا قطعت ألبانيا علاقاتها مع إيران؟")
        assert any(ALBANIA_REASON in h.text for h in hits)

    # An HNSW file from before float16 storage (float32 vectors, no "storage" recorded) is written again.
    hnsw_settings = replace(settings, faiss_index="hnsw")
    build_index(seeds_copy, index, settings=hnsw_settings, progress=False)
    conn = sqlite3.connect(index / store.DB_NAME)
    meta = store.read_meta(conn)
    old = {k: v for k, v in json.loads(meta["faiss_index"]).items() if k != "storage"}
    with conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'faiss_index'", (json.dumps(old),))
    conn.close()
    current = faiss.read_index(str(index / meta["faiss_file"]))
    vectors = np.stack([current.reconstruct(int(i)) for i in faiss.vector_to_array(current.id_map)])
    flat32 = faiss.IndexIDMap2(faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT))
    flat32.add_with_ids(vectors, faiss.vector_to_array(current.id_map))
    faiss.write_index(flat32, str(index / meta["faiss_file"]))
    warnings.clear()
    build_index(seeds_copy, index, settings=hnsw_settings, progress=False, on_warning=warnings.append)
    assert any("building a hnsw FAISS index" in w for w in warnings)
    loaded = SearchIndex(index, hnsw_settings, embedder=embedder)
    assert type(faiss.downcast_index(loaded.vectors.index)) is faiss.IndexHNSWSQ


def test_stored_vectors_keep_their_direction():
    rng = np.random.default_rng(1)
    m = rng.normal(size=(7, 384)).astype(np.float32)
    m[3] *= 40  # vectors of other lengths: each is stored with its own scale, code * scale = value
    m[5] /= 50
    rows = np.frombuffer(encode_spans(m), dtype=[("scale", "<f2"), ("codes", "i1", (384,))])
    assert rows["scale"][3] > 30 * rows["scale"][0] > 1500 * rows["scale"][5]
    values = rows["codes"].astype(np.float32) * rows["scale"].astype(np.float32)[:, None]
    assert (np.abs(values - m).max(axis=1) <= 0.6 * rows["scale"].astype(np.float32)).all()  # half a step, and f16
    m /= np.linalg.norm(m, axis=1, keepdims=True)
    back = decode_spans(encode_spans(m), 384)
    assert back.shape == m.shape
    assert float(((back * m).sum(1) / np.linalg.norm(back, axis=1)).min()) >= 0.9999
    assert len(encode_spans(m)) == 7 * (384 + 2)  # about a quarter of float32
    assert decode_spans(encode_spans(np.zeros((0, 384))), 384).shape == (0, 384)
    assert np.allclose(decode_vectors([encode_vector(m[0]), encode_vector(m[1])], 384), m[:2], atol=2e-3)


def test_an_index_in_the_old_encoding_is_converted_without_the_model(
    tmp_path, seeds_copy, settings, embedder, monkeypatch
):
    index = tmp_path / "index"
    build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    question = "لماذا قطعت ألبانيا علاقاتها مع إيران؟"
    before = SearchIndex(index, settings, embedder=embedder).search(question)
    conn = sqlite3.connect(index / store.DB_NAME)
    with conn:  # what format 4 stored: a rowid table of float32 chunk vectors and float16 sentence vectors
        rows = conn.execute("SELECT embed_hash, vector, spans FROM embeddings").fetchall()
        conn.execute("DROP TABLE embeddings")
        conn.execute("CREATE TABLE embeddings (embed_hash TEXT PRIMARY KEY, vector BLOB NOT NULL, spans BLOB NOT NULL)")
        conn.executemany(
            "INSERT INTO embeddings VALUES (?, ?, ?)",
            [
                (h, decode_vectors([v], 384)[0].tobytes(), decode_spans(sp, 384).astype(np.float16).tobytes())
                for h, v, sp in rows
            ],
        )
        conn.execute("UPDATE meta SET value = '4' WHERE key = 'format_version'")
        conn.execute("DELETE FROM meta WHERE key = 'vector_encoding'")
    conn.close()

    with pytest.raises(store.IndexMismatch, match=r"has format 4, now 5: run `rag index` to convert it"):
        SearchIndex(index, settings, embedder=embedder)

    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(indexer, "Embedder", refuse)
    read_articles = indexer.read_articles

    def crash(*_a, **_k):  # the run dies after converting the vectors, before the rebuild commits
        raise KeyboardInterrupt

    monkeypatch.setattr(indexer, "read_articles", crash)
    with pytest.raises(KeyboardInterrupt):
        build_index(seeds_copy, index, settings=settings, progress=False, on_warning=lambda _w: None)
    conn = sqlite3.connect(index / store.DB_NAME)
    assert dict(conn.execute("SELECT key, value FROM meta"))["format_version"] == "5-converting"  # older code refuses
    conn.close()
    monkeypatch.setattr(indexer, "read_articles", read_articles)
    warnings: list[str] = []
    stats = build_index(seeds_copy, index, settings=settings, progress=False, on_warning=warnings.append)
    assert stats.embedded == 0 and any("has format 5-converting, now 5" in w for w in warnings)
    conn = sqlite3.connect(index / store.DB_NAME)
    assert dict(conn.execute("SELECT key, value FROM meta"))["vector_encoding"] == VECTOR_ENCODING
    conn.close()
    after = SearchIndex(index, settings, embedder=embedder).search(question)
    assert [(h.doc_id, h.start) for h in after] == [(h.doc_id, h.start) for h in before]
    assert any(ALBANIA_REASON in h.text for h in after)
