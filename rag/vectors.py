"""The FAISS index over the chunk vectors, chosen by size: exact below a bound, approximate (HNSW or IVF) above it.

Exact inner-product search grows linearly with the corpus: 20 ms a query at 100k vectors on 2 cores, 145 ms at 1M
(HNSW: 0.4 ms and 2.4 ms; `make bench-scale`). Above `RAG_FAISS_AUTO_ABOVE` vectors, `RAG_FAISS_INDEX=auto` builds
HNSW instead; `flat`, `hnsw` and `ivf` force a kind. The kind and its parameters are recorded in the manifest, and
the file is always built from the vectors stored in SQLite, so changing the kind never re-embeds anything.
"""

from __future__ import annotations

import json
import math

import faiss
import numpy as np

KINDS = ("auto", "flat", "hnsw", "ivf")
HNSW_M = 32  # links per node
HNSW_EF_CONSTRUCTION = 80
IVF_NPROBE = 32


def hnsw_ef_search(n_vectors: int) -> int:
    """Candidates HNSW examines per query: recall@10 against exact search stays >= 0.98 with 128 up to a few hundred
    thousand vectors and needs 256 at a million (`make bench-scale` sweeps it)."""
    return 128 if n_vectors < 500_000 else 256


def resolve_kind(kind: str, n_vectors: int, auto_above: int) -> str:
    """The kind to build for `n_vectors`: `auto` is exact flat up to `auto_above`, HNSW beyond."""
    if kind not in KINDS:
        raise ValueError(f"RAG_FAISS_INDEX={kind!r}: use one of {', '.join(KINDS)}")
    if kind == "auto":
        return "flat" if n_vectors <= auto_above else "hnsw"
    return kind


def build_faiss(vectors: np.ndarray, ids: np.ndarray, kind: str) -> tuple[faiss.Index, dict]:
    """An `IndexIDMap2` (so a chunk's vector can be looked up by its id) over the index `kind`, with its parameters."""
    n, dim = vectors.shape if len(vectors) else (0, 1)
    params: dict = {"kind": kind}
    if kind == "flat":
        inner = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params.update(M=HNSW_M, efConstruction=HNSW_EF_CONSTRUCTION, efSearch=hnsw_ef_search(n))
    elif kind == "ivf":
        nlist = max(1, min(int(4 * math.sqrt(max(n, 1))), max(n // 39, 1)))  # FAISS wants >= 39 points a list
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFScalarQuantizer(
            quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        inner.cp.max_points_per_centroid = 64  # k-means on a sample: 64 points a list is plenty, and 4x faster
        if n:
            inner.train(vectors)
        params.update(nlist=nlist, nprobe=min(IVF_NPROBE, nlist), quantizer="SQ8")
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}")
    index = faiss.IndexIDMap2(inner)
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    set_search_params(index, params)
    return index, params


def set_search_params(index: faiss.Index, params: dict | str | None) -> None:
    """Apply the recorded search-time parameters (efSearch, nprobe) to a loaded index."""
    params = json.loads(params) if isinstance(params, str) else (params or {})
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    if params.get("kind") == "hnsw":
        inner.hnsw.efSearch = int(params["efSearch"])
    elif params.get("kind") == "ivf":
        inner.nprobe = int(params["nprobe"])
        inner.make_direct_map()  # so a chunk's vector can be reconstructed by id


def recall_at_k(exact: faiss.Index, approx: faiss.Index, queries: np.ndarray, k: int = 10) -> float:
    """Share of the exact top-k that the approximate index also returns, over `queries`."""
    _, want = exact.search(queries, k)
    _, got = approx.search(queries, k)
    return float(np.mean([len(set(w) & set(g)) / k for w, g in zip(want, got, strict=True)]))
