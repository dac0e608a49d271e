"""The FAISS index over the chunk vectors, chosen by size: exact below a bound, approximate (HNSW or IVF) above it.

Exact inner-product search grows linearly with the corpus: 3.6 ms a query at 100k vectors on 2 cores, 34 ms at 1M
(HNSW: 0.4 ms and 2.2 ms; `make bench-scale`). Above `RAG_FAISS_AUTO_ABOVE` vectors, `RAG_FAISS_INDEX=auto` builds
HNSW instead; `flat`, `hnsw` and `ivf` force a kind. The kind and its parameters are recorded in the manifest, and
the file is always built from the vectors stored in SQLite, so changing the kind never re-embeds anything.

On disk (`VECTOR_ENCODING`), chunk and sentence vectors are int8 with a float16 scale each (cosine >= 0.99996 with
float16 on the SaudiNewsNet index). The exact ("flat") FAISS index holds the decoded vectors in float16
(`IndexScalarQuantizer`, exact for them), so its scores are the inner products with the stored vectors; one query
over 18k vectors took 0.34 ms against 2.2 ms for float32 `IndexFlatIP`. HNSW keeps its vectors in float16 too
(`IndexHNSWSQ`): over the 136k SaudiNewsNet chunks its file is 142 MB against 246 MB in float32, recall@10 against
exact search 0.992 against 0.994, and search as fast (0.23 ms a query); at 1M chunks it saves about 0.8 GB of memory.
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
VECTOR_ENCODING = "int8, float16 scale per vector"  # recorded in the index's meta; older indexes are converted


def _row_type(dim: int) -> np.dtype:
    return np.dtype([("scale", "<f2"), ("codes", "i1", (dim,))])


def encode_spans(vectors: np.ndarray) -> bytes:
    """Vectors as stored: per vector a float16 scale, then its values as int8 (value = code * scale). A unit vector
    keeps cosine >= 0.99996 with its float16 form (measured on the SaudiNewsNet index's sentence vectors)."""
    m = np.asarray(vectors, dtype=np.float32)
    m = m.reshape(1, -1) if m.ndim == 1 else m
    rows = np.zeros(len(m), dtype=_row_type(m.shape[1]))
    rows["scale"] = np.abs(m).max(axis=1, initial=0) / 127
    safe = np.where(rows["scale"] > 0, rows["scale"], 1).astype(np.float32)
    rows["codes"] = np.clip(np.rint(m / safe[:, None]), -127, 127)
    return rows.tobytes()


def encode_vector(vector: np.ndarray) -> bytes:
    """A chunk vector as stored (the encoding of `encode_spans`, one row)."""
    return encode_spans(np.asarray(vector).reshape(1, -1))


def decode_spans(blob: bytes, dim: int) -> np.ndarray:
    """What `encode_spans` wrote, as a float32 matrix with one row per vector, each of unit length again (what the
    model gave; the int8 rounding moves a norm by about 0.1%)."""
    rows = np.frombuffer(blob, dtype=_row_type(dim))
    m = rows["codes"].astype(np.float32)
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return np.divide(m, norms, out=m, where=norms > 0)


def decode_vectors(blobs: list[bytes], dim: int) -> np.ndarray:
    """Stored chunk vectors as a float32 matrix, one row per blob."""
    return decode_spans(b"".join(blobs), dim)


def stored_dim(blob: bytes) -> int:
    """The dimension of one stored chunk vector."""
    return len(blob) - 2


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
    if kind == "flat":  # float16, as stored: exact inner products with the stored vectors, half the bytes of fp32
        inner = faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT)
    elif kind == "hnsw":
        inner = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        params.update(M=HNSW_M, efConstruction=HNSW_EF_CONSTRUCTION, efSearch=hnsw_ef_search(n), storage="fp16")
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


def params_current(params: dict, kind: str) -> bool:
    """Whether a FAISS file built with `params` is what `build_faiss` builds now for `kind` (an HNSW file from before
    float16 storage is not: it is written again from the stored vectors)."""
    return params.get("kind", "flat") == kind and (kind != "hnsw" or params.get("storage") == "fp16")


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
