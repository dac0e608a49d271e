"""The cost curve (`make bench-scale`, about 15 minutes here): build throughput locally and on Ray, search cost of exact
and approximate FAISS indexes as the corpus grows, disk per chunk, and a projection to 10M and 100M chunks.

Vectors beyond the real index are synthetic: real chunk vectors of the SaudiNewsNet scale index (built by `make
bench`) plus Gaussian noise, renormalised, labelled as such in the report.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from bench.data import data_dir, saudinewsnet, write_records
from bench.run import ROOT, latencies_ms, log, rss_mb, write_bulk_rows
from rag.building import build_index  # as `rag index` does: the new generation's caches made at once
from rag.embed import Embedder
from rag.settings import Settings
from rag.store import DB_NAME
from rag.vectors import build_faiss, decode_vectors, recall_at_k, stored_dim

WORK = ROOT / "bench" / "work"
SCALE_INDEX = WORK / "snn-index"


def build_throughput(root: Path, settings: Settings, n_articles: int, encode_sample: int = 600) -> dict:
    """Chunks/s of the local builder and of `--ray` with one actor of all cores' threads and with one single-threaded
    actor per core (the default), each a whole `rag index` in a fresh process (model load, and for Ray the cluster
    start, included), against bare encode in this run."""
    from rag.articles import read_articles
    from rag.indexer import plan_chunks

    rows = saudinewsnet(root, 2600 + 200 + n_articles)[-n_articles:]  # articles the scale index does not hold
    seeds = WORK / "scale-throughput" / "seeds"
    write_bulk_rows(seeds, rows)
    embedder = Embedder(str(settings.model), settings.precision)
    articles, _ = read_articles(seeds)
    texts = [p.text for a in articles for p in plan_chunks(a, settings, embedder.fingerprint)[1]]
    sample = texts[:: max(1, len(texts) // encode_sample)][:encode_sample]
    embedder.model.encode_document(sample[:32], batch_size=32)
    t0 = time.perf_counter()
    embedder.model.encode_document(sample, batch_size=settings.batch_size)
    out: dict = {
        "chunks": len(texts),
        f"bare fp32 encode (chunks/s, {len(sample)} of them)": len(sample) / (time.perf_counter() - t0),
    }
    del embedder
    cores = os.cpu_count() or 1
    runs = {"local builder": 0, f"--ray, 1 actor x {cores} threads": 1, f"--ray, {cores} actors x 1 thread": cores}
    for name, actors in runs.items():
        index = WORK / "scale-throughput" / f"index-{actors}"
        if index.exists():
            import shutil

            shutil.rmtree(index)
        cmd = [sys.executable, "-m", "bench.scale", "--build-once", str(seeds), str(index), str(actors)]
        run = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
        out[f"{name} (chunks/s, whole build)"] = run["embedded"] / run["seconds"]
        out[f"{name} (s to the first embedded batch)"] = run["first batch (s)"]
        out[f"{name} (chunks/s after the first batch)"] = run["steady (chunks/s)"]
    default = f"--ray, {cores} actors x 1 thread"  # the default on a CPU cluster: one single-threaded actor per core
    for part in ("whole build", "after the first batch"):
        unit = "chunks/s, whole build" if part == "whole build" else "chunks/s after the first batch"
        out[f"--ray (default actors) / local builder, {part}"] = (
            out[f"{default} ({unit})"] / out[f"local builder ({unit})"]
        )
    return out


def build_once(seeds: Path, index: Path, actors: int) -> dict:
    """One `rag index` as a fresh process runs it (local with actors=0, else `--ray` with that many local actors),
    timed whole and from its first embedded batch on."""
    from rag.building import build_index
    from rag.indexer import local_engine

    settings = Settings.from_env()
    t0 = time.perf_counter()
    if actors:
        from rag.ray_embed import ray_engine

        engine = ray_engine(settings, actors=actors)
    else:

        def engine(missing):  # the local builder's own engine, with the model loaded where `rag index` loads it
            yield from local_engine(Embedder(str(settings.model), settings.precision), settings.batch_size)(missing)

    marks: dict = {}

    def timed(missing):
        done = 0
        for rows in engine(missing):
            if not marks:
                marks.update(first=time.perf_counter(), first_rows=len(rows))
            done += len(rows)
            marks["last"], marks["done"] = time.perf_counter(), done
            yield rows

    stats = build_index(seeds, index, settings=settings, engine=timed, progress=False)
    steady = (marks["done"] - marks["first_rows"]) / max(1e-9, marks["last"] - marks["first"])
    return {
        "embedded": stats.embedded,
        "seconds": time.perf_counter() - t0,
        "first batch (s)": marks["first"] - t0,
        "steady (chunks/s)": steady,
    }


FULL_INDEX, FULL_SEEDS = WORK / "snn-full-index", WORK / "snn-full-seeds"
HELD_OUT = 200  # SaudiNewsNet articles kept out of the whole-corpus index, to be added by the benchmarks


def full_index(root: Path, settings: Settings) -> Path:
    """The whole of saudinewsnet-20k but HELD_OUT articles as one index (about 140,000 chunks), built incrementally and
    kept in bench/work
    for later runs. A first build starts from a copy of `make bench`'s scale index, whose 2,600 articles are the
    same records, so their stored vectors are reused."""
    import shutil

    target = FULL_SEEDS / "saudinewsnet.jsonl"
    write_records(target.with_suffix(".new"), saudinewsnet(root, 20_000)[:-HELD_OUT])
    if target.is_file() and target.read_bytes() == target.with_suffix(".new").read_bytes():
        target.with_suffix(".new").unlink()  # unchanged: keep its time, so builds need not read it again
    else:
        target.with_suffix(".new").replace(target)
    if not (FULL_INDEX / DB_NAME).is_file() and (SCALE_INDEX / DB_NAME).is_file():
        shutil.rmtree(FULL_INDEX, ignore_errors=True)
        shutil.copytree(SCALE_INDEX, FULL_INDEX)
    log("scale: the whole SaudiNewsNet corpus as one index (embeds only what bench/work does not hold yet)")
    stats = build_index(FULL_SEEDS, FULL_INDEX, settings=settings, progress=True)
    log(f"scale: {FULL_INDEX}: {stats.summary()}")
    return FULL_INDEX


def real_vectors() -> np.ndarray:
    conn = sqlite3.connect(SCALE_INDEX / DB_NAME)
    blobs = [r[0] for r in conn.execute("SELECT e.vector FROM chunks c JOIN embeddings e USING (embed_hash)")]
    conn.close()
    return decode_vectors(blobs, stored_dim(blobs[0]))


def grown(real: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` vectors: the real ones, then perturbed copies of them (synthetic), unit length."""
    if n <= len(real):
        return real[:n].copy()
    extra = real[rng.integers(0, len(real), n - len(real))] + 0.05 * rng.standard_normal(
        (n - len(real), real.shape[1]), dtype=np.float32
    )
    extra /= np.linalg.norm(extra, axis=1, keepdims=True)
    return np.concatenate([real, extra])


def search_costs(sizes: list[int], kinds: list[str]) -> dict:
    """Build time, search p50/p95 (one query at a time), recall@10 against exact, and memory, per kind and size."""
    import faiss

    faiss.omp_set_num_threads(os.cpu_count() or 1)
    rng = np.random.default_rng(0)
    real = real_vectors()
    queries = grown(real, len(real) + 200, rng)[-200:]  # held-out perturbed vectors
    out: dict = {}
    for n in sizes:
        data = grown(real, n, rng)
        ids = np.arange(n, dtype=np.int64)
        exact = None
        for kind in kinds:
            before = rss_mb()
            t0 = time.perf_counter()
            index, params = build_faiss(data, ids, kind)
            built = time.perf_counter() - t0
            size_mb = len(faiss.serialize_index(index)) / 2**20
            lat = []
            for q in queries:
                t0 = time.perf_counter()
                index.search(q[None, :], 10)
                lat.append((time.perf_counter() - t0) * 1000)
            exact = index if kind == "flat" else exact
            recall = 1.0 if kind == "flat" else recall_at_k(exact, index, queries, 10) if exact is not None else None
            if kind == "hnsw":  # the search-time knob: the recall and latency other efSearch values give
                inner = faiss.downcast_index(index.index)
                for ef in (64, 128, 256, 512):
                    inner.hnsw.efSearch = ef
                    ef_lat = []
                    for q in queries:
                        t0 = time.perf_counter()
                        index.search(q[None, :], 10)
                        ef_lat.append((time.perf_counter() - t0) * 1000)
                    key = f"{n:,} vectors, efSearch {ef}"
                    ef_recall = recall_at_k(exact, index, queries, 10)
                    out.setdefault("efSearch sweep", {})[key] = (ef_recall, float(np.percentile(ef_lat, 50)))
                inner.hnsw.efSearch = params["efSearch"]
            out[f"{kind} @ {n:,}"] = {
                "vectors": "real" if n <= len(real) else f"{len(real):,} real + {n - len(real):,} synthetic",
                "build (s)": built,
                "search p50 (ms)": float(np.percentile(lat, 50)),
                "search p95 (ms)": float(np.percentile(lat, 95)),
                "recall@10 vs exact": recall,
                "index size (MB)": size_mb,
                "RSS growth (MB)": rss_mb() - before,
                "params": json.dumps({k: v for k, v in params.items() if k != "kind"}),
            }
            log(f"scale: {kind} at {n:,}: {out[f'{kind} @ {n:,}']}")
            if kind != "flat":
                del index
        del data, exact
    return out


def disk_per_chunk(index: Path = SCALE_INDEX) -> dict:
    """Bytes per chunk of an index, by table and file."""
    conn = sqlite3.connect(index / DB_NAME)
    n = conn.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
    out = {"chunks": n}
    for name, size in conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"):
        if size / n >= 20:
            out[f"sqlite: {name} (B/chunk)"] = size / n
    conn.close()
    for pattern, label in (("*.faiss", "faiss file"), ("cache-*/**/*", "caches")):
        total = sum(f.stat().st_size for f in index.glob(pattern) if f.is_file())
        out[f"{label} (B/chunk)"] = total / n
    out["all (B/chunk)"] = sum(f.stat().st_size for f in index.rglob("*") if f.is_file()) / n
    return out


def compacted_copy(settings: Settings) -> Path:
    """The scale index copied and rebuilt (`rag index --rebuild`: stored vectors reused, 16 KB pages)."""
    import shutil

    copy = WORK / "scale-compacted"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(SCALE_INDEX, copy)
    build_index(WORK / "snn-seeds", copy, rebuild=True, settings=settings, progress=False)
    return copy


def answer_latency(settings: Settings) -> dict:
    from rag.chain import make_chain
    from rag.retrieve import SearchIndex

    index = SearchIndex(SCALE_INDEX, settings)
    chain = make_chain(index)
    questions = ["why did Albania cut ties?", "What did the ministry announce?", "ما هي أسعار النفط؟"] * 20
    lat = latencies_ms(chain.invoke, questions)
    return {"chunks": len(index), "answer() p50 (ms)": float(np.percentile(lat, 50))}


def projection(costs: dict, throughput: dict, disk: dict) -> list[list[str]]:
    """Linear extrapolation from the largest measured size: memory, disk, build time per worker, query latency."""
    sizes = sorted({int(k.split(" @ ")[1].replace(",", "")) for k in costs})
    top = sizes[-1]
    flat, hnsw = costs[f"flat @ {top:,}"], costs.get(f"hnsw @ {top:,}")
    per_worker = throughput["local builder (chunks/s, whole build)"]
    rows = []
    for n in (10_000_000, 100_000_000):
        scale = n / top
        flat_mem = flat["index size (MB)"] * scale / 1024
        hnsw_mem = (hnsw or flat)["index size (MB)"] * scale / 1024
        rows.append(
            [
                f"{n:,}",
                f"{flat_mem:.0f} GB flat / {hnsw_mem:.0f} GB HNSW",
                f"{disk['all (B/chunk)'] * n / 2**30:.0f} GB",
                f"{n / per_worker / 86400:.0f} days",
                f"flat ~{flat['search p50 (ms)'] * scale:.0f} ms; HNSW ~{(hnsw or flat)['search p50 (ms)']:.1f} ms "
                "(grows with log n)",
                "the FAISS index must fit in RAM: shard it (or IVF-PQ on disk)"
                if hnsw_mem > 100
                else "flat search latency; then RAM",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=None)
    parser.add_argument("--sizes", default="10000,100000,1000000", help="vector counts for the search cost curve")
    parser.add_argument("--articles", type=int, default=400, help="articles for the build throughput runs")
    parser.add_argument("--out", default=str(ROOT / "bench" / "SCALE.md"))
    parser.add_argument(
        "--full-only", action="store_true", help="only build (or bring up to date) the whole-corpus index"
    )
    parser.add_argument("--build-once", nargs=3, metavar=("SEEDS", "INDEX", "ACTORS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.full_only:
        full_index(data_dir(args.shared), Settings.from_env())
        return 0
    if args.build_once:
        seeds, index, actors = args.build_once
        print(json.dumps(build_once(Path(seeds), Path(index), int(actors))))
        return 0
    if not (SCALE_INDEX / DB_NAME).is_file():
        print("error: no scale index at bench/work/snn-index: run `make bench` first", file=sys.stderr)
        return 2
    root = data_dir(args.shared)
    settings = Settings.from_env()
    t_start = time.perf_counter()
    log("scale: build throughput, local and on Ray")
    throughput = build_throughput(root, settings, args.articles)
    log("scale: search cost by index kind and size")
    costs = search_costs([int(x) for x in args.sizes.split(",")], ["flat", "hnsw", "ivf"])
    disk = disk_per_chunk()
    log("scale: the scale index rebuilt with 16 KB pages")
    compacted = disk_per_chunk(compacted_copy(settings))
    answers = answer_latency(replace(settings))
    lines = [
        "# Cost curve (`make bench-scale`)",
        "",
        f"- took {(time.perf_counter() - t_start) / 60:.1f} min on {os.cpu_count()} cores; one query at a time",
        "",
        "## Build throughput (same chunks, same run)",
        "",
        "| measure | value |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in throughput.items()],
        "",
        "## Search by index kind and size",
        "",
        "| index | vectors | build (s) | p50 (ms) | p95 (ms) | recall@10 | size (MB) | RSS growth (MB) | parameters |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sweep = costs.pop("efSearch sweep", {})
    for name, c in costs.items():
        recall = "-" if c["recall@10 vs exact"] is None else f"{c['recall@10 vs exact']:.3f}"
        lines.append(
            f"| {name} | {c['vectors']} | {c['build (s)']:.1f} | {c['search p50 (ms)']:.2f} | "
            f"{c['search p95 (ms)']:.2f} | {recall} | {c['index size (MB)']:.0f} | {c['RSS growth (MB)']:.0f} | "
            f"{c['params']} |"
        )
    lines += [
        "",
        "HNSW's efSearch (search time only; the default is chosen by size, `rag.vectors.hnsw_ef_search`):",
        "",
    ]
    lines += ["| index | recall@10 | search p50 (ms) |", "|---|---|---|"]
    lines += [f"| {k} | {r:.3f} | {ms:.2f} |" for k, (r, ms) in sweep.items()]
    lines += [
        "",
        "## Disk per chunk (the SaudiNewsNet scale index, as built, and rebuilt with 16 KB pages)",
        "",
        "| part | as built | rebuilt |",
        "|---|---|---|",
    ]
    for k in dict.fromkeys([*disk, *compacted]):
        a, b = disk.get(k, 0), compacted.get(k, 0)
        lines.append(f"| {k} | {a:.0f} | {b:.0f} |" if isinstance(a, float) else f"| {k} | {a} | {b} |")
    lines += ["", f"answer() p50 on the largest real index ({answers['chunks']:,} chunks): "]
    lines[-1] += f"{answers['answer() p50 (ms)']:.1f} ms"
    lines += [
        "",
        "## Projection (linear from the largest measured size; one worker = this machine's local builder)",
        "",
        "| chunks | FAISS memory | disk | build time, one worker | query latency | first part that breaks |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in projection(costs, throughput, disk)]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
