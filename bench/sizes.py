"""What a user waits for as the index grows (`make bench-scale`): answer() in English and Arabic, `rag ask`'s cold
start, a chat server's memory after 200 questions, adding one article and 100 articles, and disk per chunk.

Sizes: `make bench`'s scale index (2,600 SaudiNewsNet articles, about 18k chunks); the whole of saudinewsnet-20k
but 200 articles held out for the additions (about 140k chunks, all real); and that scale index grown with synthetic
articles to 1M chunks. A synthetic article takes the sentence count of a real one and real sentences drawn from the
whole corpus, with one word in 40 given a made-up two-letter ending, so the vocabulary keeps growing as a news
archive's does (BM25 and the name matcher grow with articles and words, not only with vectors); its vector is a
real chunk vector plus noise. Synthetic articles are labelled (ids `syn-...`, titles "synthetic ...").
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from bench.api import free_port
from bench.data import data_dir, news_dev, saudinewsnet, write_records
from bench.run import PEAK_RSS, ROOT, latencies_ms, log
from bench.scale import FULL_SEEDS, HELD_OUT, SCALE_INDEX, WORK, disk_per_chunk, full_index, real_vectors
from rag.building import build_index
from rag.chunking import split_sentences
from rag.indexer import embedded_row
from rag.lexical import BM25
from rag.settings import Settings
from rag.store import BM25_CACHE, DB_NAME, cache_dir
from rag.tokens import ChunkEmbedding

GROWN_INDEX, GROWN_SEEDS = WORK / "snn-grown-index", WORK / "snn-grown-seeds"
_LETTERS = "ابتثجحخدذرزسشصضطظعغفقكلمنهوي"


def synthetic_rows(root: Path, n: int, seed: int = 1) -> Iterator[dict]:
    """`n` synthetic articles (see the module's docstring), in a fixed order for a fixed seed."""
    rows = saudinewsnet(root, 20_000)
    sentences, counts, dates = [], [], [r["date"] for r in rows if r.get("date")]
    for r in rows:
        spans = split_sentences(r["text"])
        counts.append(len(spans))
        sentences += [r["text"][s.start : s.end] for s in spans]
    rng = random.Random(seed)
    for i in range(n):
        words = " ".join(rng.choice(sentences) for _ in range(rng.choice(counts))).split(" ")
        for j in range(len(words)):
            if rng.random() < 1 / 40:
                words[j] += rng.choice(_LETTERS) + rng.choice(_LETTERS)
        yield {
            "id": f"syn-{i:07d}",
            "title": f"synthetic {i}",
            "text": " ".join(words),
            "url": "",
            "date": rng.choice(dates),
        }


def synthetic_engine(real: np.ndarray, seed: int = 0):
    """An embedding engine for `build_index` that gives each chunk a real chunk vector plus noise (and each sentence
    that vector plus more noise), unit length: the cost of storing and searching vectors, without the model."""
    rng = np.random.default_rng(seed)

    def unit(m: np.ndarray) -> np.ndarray:
        return (m / np.linalg.norm(m, axis=-1, keepdims=True)).astype(np.float32)

    def run(missing):
        for i in range(0, len(missing), 1024):
            batch = missing[i : i + 1024]
            base = unit(
                real[rng.integers(0, len(real), len(batch))]
                + 0.05 * rng.standard_normal((len(batch), real.shape[1]), dtype=np.float32)
            )
            rows = []
            for p, v in zip(batch, base, strict=True):
                spans = unit(v + 0.05 * rng.standard_normal((len(p.spans), len(v)), dtype=np.float32))
                rows.append(embedded_row(p.embed_hash, ChunkEmbedding(v, spans)))
            yield rows

    return run


def grown_index(root: Path, settings: Settings, target_chunks: int) -> Path:
    """The scale index (18k real chunks) grown with synthetic articles to about `target_chunks`; kept in bench/work."""
    if not (GROWN_INDEX / DB_NAME).is_file():
        shutil.rmtree(GROWN_INDEX, ignore_errors=True)
        shutil.copytree(SCALE_INDEX, GROWN_INDEX)
    base = sqlite3.connect(SCALE_INDEX / DB_NAME)
    n_real, n_docs = base.execute("SELECT (SELECT COUNT(*) FROM chunks), (SELECT COUNT(*) FROM documents)").fetchone()
    base.close()
    n_synthetic = int((target_chunks - n_real) / (n_real / n_docs))
    GROWN_SEEDS.mkdir(parents=True, exist_ok=True)
    for f in (WORK / "snn-seeds").iterdir():
        shutil.copy(f, GROWN_SEEDS / f.name)
    part, per_file = [], 10_000
    marker = GROWN_SEEDS / f".synthetic-{n_synthetic}"
    if not marker.is_file():
        log(f"sizes: writing {n_synthetic:,} synthetic articles")
        for old in GROWN_SEEDS.glob("synthetic-*.jsonl"):
            old.unlink()
        for i, row in enumerate(synthetic_rows(root, n_synthetic)):
            part.append(row)
            if len(part) == per_file:
                write_records(GROWN_SEEDS / f"synthetic-{i // per_file:03d}.jsonl", part)
                part = []
        if part:
            write_records(GROWN_SEEDS / f"synthetic-{n_synthetic // per_file:03d}.jsonl", part)
        marker.touch()
    log(f"sizes: building the grown index ({n_synthetic:,} synthetic articles; vectors without the model)")
    stats = build_index(GROWN_SEEDS, GROWN_INDEX, settings=settings, engine=synthetic_engine(real_vectors()), yes=True)
    log(f"sizes: {GROWN_INDEX}: {stats.summary()}")
    return GROWN_INDEX


def serve_rss(index: Path, seeds: Path, questions: list[str], n: int = 200) -> dict:
    """`rag serve --read-only` on the index, asked `n` questions over its OpenAI-compatible API: its RSS then."""
    import httpx

    from ui.openai_api import MODEL_ID

    port = free_port()
    env = {**os.environ, "RAG_INDEX_DIR": str(index), "RAG_SEEDS_DIR": str(seeds)}
    cmd = [sys.executable, "-m", "rag.cli", "serve", "--read-only", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        with httpx.Client(timeout=300) as client:
            while True:
                try:
                    client.get(f"{url}/v1/models").raise_for_status()
                    break
                except httpx.HTTPError:
                    if proc.poll() is not None or time.perf_counter() - t0 > 600:
                        raise RuntimeError("rag serve did not start") from None
                    time.sleep(1)
            started = time.perf_counter() - t0
            for i in range(n):
                q = questions[i % len(questions)]
                body = {"model": MODEL_ID, "messages": [{"role": "user", "content": q}]}
                client.post(f"{url}/v1/chat/completions", json=body).raise_for_status()
        status = Path(f"/proc/{proc.pid}/status").read_text()
        field = {
            k: int(v.split()[0]) / 1024
            for k, v in (line.split(":", 1) for line in status.splitlines())
            if k in ("VmRSS", "VmHWM")
        }
        return {
            "rag serve ready (s)": started,
            f"rag serve RSS after {n} questions (MB)": field["VmRSS"],
            "rag serve peak RSS (MB)": field["VmHWM"],
        }
    finally:
        proc.terminate()
        proc.wait(timeout=60)


def cli(*args: str) -> tuple[float, str]:
    """A `rag` command as its own process, timed whole (imports, index load, the work)."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"rag {args[0]} failed: {proc.stderr.strip()[-500:]}")
    return time.perf_counter() - t0, proc.stdout


def additions(index: Path, seeds: Path, held: list[dict]) -> dict:
    """On a copy of the index: `rag index` after one new article, after its removal, and after 100 new articles."""
    scratch_index, scratch_seeds = WORK / "sizes-scratch-index", WORK / "sizes-scratch-seeds"
    for folder in (scratch_index, scratch_seeds):
        shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(index, scratch_index)
    shutil.copytree(seeds, scratch_seeds)
    out: dict = {}
    try:
        build_index(scratch_seeds, scratch_index, progress=False)  # a no-change build: the state after any earlier
        one = scratch_seeds / "added_one.txt"
        one.write_text(f"{held[0]['title']}\n{held[0]['text']}\n", encoding="utf-8")
        os.utime(one, ns=(time.time_ns() - 10**10,) * 2)
        os.sync()  # the copy's writes reach the disk first: a user's index is not a fresh 700 MB copy whose write-back
        # would be waited for by the build's fsync (it read 5.9 s against 3.4 s on a settled copy)
        out["add one article: rag index (s)"], text = cli(
            "index", "--seeds", str(scratch_seeds), "--index", str(scratch_index), "--quiet"
        )
        out["add one article: how it embedded"] = next(
            (
                line.split(":", 1)[1].split("(")[0].strip()
                for line in text.splitlines()
                if line.startswith("precision:")
            ),
            "",
        )
        kind = json.loads((scratch_index / "manifest.json").read_text()).get("faiss_index", "{}")
        if '"hnsw"' in kind:  # kept: its removal would rebuild the HNSW file, in the next measure too
            out["remove one article: rag index (s)"] = "not measured: HNSW cannot remove, the FAISS file is rebuilt"
        else:
            one.unlink()
            out["remove one article: rag index (s)"], _ = cli(
                "index", "--seeds", str(scratch_seeds), "--index", str(scratch_index), "--quiet"
            )
        write_records(scratch_seeds / "added_100.jsonl", held[1:101])
        seconds, _ = cli("index", "--seeds", str(scratch_seeds), "--index", str(scratch_index), "--quiet")
        out["add 100 articles: rag index (s)"] = seconds
        out["build time per 1,000 articles (s, from the 100)"] = seconds * 10
    finally:
        for folder in (scratch_index, scratch_seeds):
            shutil.rmtree(folder, ignore_errors=True)
    return out


def with_term_counts(index: Path, seeds: Path, settings: Settings) -> None:
    """Caches of the current format (BM25 term counts included, so a small build derives the next ones): an index
    whose caches predate them gets them made again by a no-change build."""
    generation = json.loads((index / "manifest.json").read_text())["generation"]
    folder = cache_dir(index, str(generation))
    if not (folder / BM25_CACHE / BM25.COUNTS).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        build_index(seeds, index, settings=settings, progress=False)


def costs_at(index: Path, seeds: Path, settings: Settings, items, held: list[dict]) -> dict:
    """Every figure of the table at one size."""
    from rag import answer

    with_term_counts(index, seeds, settings)

    conn = sqlite3.connect(index / DB_NAME)
    n_chunks, n_docs = conn.execute("SELECT (SELECT COUNT(*) FROM chunks), (SELECT COUNT(*) FROM documents)").fetchone()
    n_syn = conn.execute("SELECT COUNT(*) FROM documents WHERE doc_id LIKE '%syn-%'").fetchone()[0]
    present = {d.rsplit("#", 1)[-1] for (d,) in conn.execute("SELECT doc_id FROM documents")}
    conn.close()
    out: dict = {"chunks": n_chunks, "articles": n_docs, "synthetic articles": n_syn}
    log(f"sizes: {index.name}: {n_chunks:,} chunks")
    singles = [it for it in items if it.kind == "single"]
    for lang in ("en", "ar"):
        questions = [it.questions[0] for it in singles if it.lang == lang][:40]
        lat = latencies_ms(lambda q: answer(q, index_dir=index, settings=settings), questions)
        out[f"answer() p50, {lang} (ms)"] = float(np.percentile(lat, 50))
        out[f"answer() p95, {lang} (ms)"] = float(np.percentile(lat, 95))
    indexed = [it for it in singles if it.doc_id in present]  # quality at this size, where the article is indexed
    evidence = 0
    for it in indexed:
        a = answer(it.questions[0], index_dir=index, settings=settings)
        quotes = " ".join(c.quote for c in a.citations) if a.found else ""
        evidence += any(e in quotes for e in it.evidence[0])
    out["news dev questions whose article is indexed"] = len(indexed)
    out["of them, with the evidence in a quote"] = evidence / len(indexed) if indexed else "-"
    env = {**os.environ, "RAG_INDEX_DIR": str(index)}
    cmd = [sys.executable, "-m", "rag.cli", "ask", "لماذا قطعت ألبانيا علاقاتها مع إيران؟", "--json"]
    for attempt in ("first", "again"):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, *cmd], env=env, capture_output=True, text=True, check=False
        )
        out[f"rag ask cold start, {attempt} (s)"] = time.perf_counter() - t0
        out["rag ask peak RSS (MB)"] = int(proc.stdout.rsplit("PEAK_KB", 1)[1]) / 1024
    out.update(serve_rss(index, seeds, [it.questions[0] for it in singles]))
    out.update(additions(index, seeds, held))
    out.update({k: v for k, v in disk_per_chunk(index).items() if k == "all (B/chunk)"})
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=None)
    parser.add_argument("--grow-to", type=int, default=1_000_000, help="chunks of the grown index")
    parser.add_argument("--sizes", default="scale,full,grown", help="which of scale, full, grown to measure")
    parser.add_argument("--out", default=str(ROOT / "bench" / "SIZES.md"))
    args = parser.parse_args(argv)
    root = data_dir(args.shared)
    settings = Settings.from_env()
    if not (SCALE_INDEX / DB_NAME).is_file():
        print("error: no scale index at bench/work/snn-index: run `make bench` first", file=sys.stderr)
        return 2
    items = news_dev(root)
    held = saudinewsnet(root, 20_000)[-HELD_OUT:]
    folders = {"scale": (SCALE_INDEX, WORK / "snn-seeds")}
    wanted = args.sizes.split(",")
    if "full" in wanted:
        folders["full"] = (full_index(root, settings), FULL_SEEDS)
    if "grown" in wanted:
        folders["grown"] = (grown_index(root, settings, args.grow_to), GROWN_SEEDS)
    t0 = time.perf_counter()
    results = {
        name: costs_at(index, seeds, settings, items, held)
        for name, (index, seeds) in folders.items()
        if name in wanted
    }
    (WORK / "sizes.json").write_text(json.dumps(results, indent=1))
    measures = list(dict.fromkeys(k for r in results.values() for k in r))
    lines = [
        "# What a user waits for, by index size (`make bench-scale`)",
        "",
        f"- measured in {(time.perf_counter() - t0) / 60:.1f} min on {os.cpu_count()} cores; see bench/sizes.py for"
        " how the grown index is made",
        "",
        "| measure | " + " | ".join(results) + " |",
        "|---" * (len(results) + 1) + "|",
    ]
    for m in measures:
        cells = [results[n].get(m, "") for n in results]
        lines.append(
            f"| {m} | "
            + " | ".join(
                f"{c:,.3f}" if isinstance(c, float) else f"{c:,}" if isinstance(c, int) else str(c) for c in cells
            )
            + " |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
