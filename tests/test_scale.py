"""Scale-out: `rag index --ray` on a local Ray cluster builds the same index as the local builder (needs the `scale`
extra, which `make test` installs for these tests)."""

from __future__ import annotations

import sqlite3
from dataclasses import replace

import numpy as np
import pytest
from conftest import ALBANIA_REASON, SEEDS

from rag import store
from rag.chain import make_chain
from rag.embed import Embedder
from rag.indexer import build_index
from rag.retrieve import SearchIndex
from rag.vectors import decode_spans, decode_vectors, stored_dim

pytestmark = pytest.mark.scale
ray = pytest.importorskip("ray", reason="Ray is not installed: `pip install -e '.[scale]'` (make test does)")


def _chunks(index) -> list[tuple]:
    conn = sqlite3.connect(index / store.DB_NAME)
    rows = conn.execute(
        "SELECT c.id, c.doc_id, c.start, c.end, c.embed_hash, e.vector, e.spans "
        "FROM chunks c JOIN embeddings e USING (embed_hash) ORDER BY c.id"
    ).fetchall()
    conn.close()
    return rows


def test_ray_builds_the_same_index_as_the_local_builder(tmp_path, settings):
    from distractors import write_distractors

    from rag.ray_embed import ray_engine

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "albania.txt").write_bytes(next(SEEDS.glob("*.txt")).read_bytes())
    write_distractors(seeds)
    fp32 = replace(settings, precision="fp32")
    local = build_index(seeds, tmp_path / "local", settings=fp32, embedder=Embedder(str(fp32.model)), progress=False)
    on_ray = build_index(seeds, tmp_path / "ray", settings=fp32, engine=ray_engine(fp32, actors=1), progress=False)
    assert (on_ray.embedded, on_ray.chunks) == (local.embedded, local.chunks)

    a, b = _chunks(tmp_path / "local"), _chunks(tmp_path / "ray")
    assert [r[:5] for r in a] == [r[:5] for r in b]  # same chunk ids, articles, offsets, text hashes
    dim = stored_dim(a[0][5])
    va = decode_vectors([r[5] for r in a], dim)
    vb = decode_vectors([r[5] for r in b], dim)
    cos = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    assert float(cos.min()) >= 0.9995  # the same vectors, each side within its int8 encoding (worst case 0.9998)
    sa = np.concatenate([decode_spans(r[6], dim) for r in a])
    sb = np.concatenate([decode_spans(r[6], dim) for r in b])
    cos = (sa * sb).sum(1) / np.linalg.norm(sa, axis=1) / np.linalg.norm(sb, axis=1)
    assert float(cos.min()) >= 0.9995  # and the sentence vectors

    answers = [
        make_chain(SearchIndex(tmp_path / name, fp32)).invoke("لماذا قطعت ألبانيا علاقاتها مع إيران؟")
        for name in ("local", "ray")
    ]
    assert [(c.doc_id, c.start, c.end) for c in answers[0].citations] == [
        (c.doc_id, c.start, c.end) for c in answers[1].citations
    ]
    assert any(ALBANIA_REASON in c.quote for c in answers[1].citations)


def test_parquet_shards_are_read_like_jsonl(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from rag.articles import read_articles

    rows = {
        "id": ["a", "b", "a", "c"],
        "title": ["أول", "ثان", "مكرر", None],
        "text": ["نص المقال الأول.", "نص المقال الثاني.", "نص مكرر.", "نص المقال الثالث."],
    }
    pq.write_table(pa.table(rows), tmp_path / "shard-0001.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 not really")
    articles, warnings = read_articles(tmp_path)
    assert [a.doc_id for a in articles] == ["shard-0001.parquet#a", "shard-0001.parquet#b", "shard-0001.parquet#c"]
    assert any("shard-0001.parquet:3: duplicate id 'a' (first on line 1)" in w for w in warnings)
    assert any(w.startswith("broken.parquet: not a readable Parquet file") for w in warnings)
