"""The time benchmark: the time dev set's questions through the whole chain, over a corpus that holds their articles,
their same-topic articles of other days and the news corpus's articles of the same weeks (`make bench`).

Kinds, each on a half (odd ids tune, even ids test):
- resolved_date: the answer or its citations carry `answer_date` (a relative day resolved against the article's date);
- date_scoped: evidence in a quote, and the question's article cited first;
- latest: the newest report's evidence is quoted, before any older report's;
- out_of_range: refused, with the coverage reason.
The naive LangChain recipe (top-3 chunks) is scored on the same date_scoped and latest questions in the same run.

    python -m bench.timebench [--half tune|test] [--time-weight W] [--recency-weight W]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
from pathlib import Path

from bench.data import data_dir, news_corpus, news_dev, read_jsonl, write_records
from bench.leftout import all_rows
from rag.building import build_index  # as `rag index` does: the new generation's caches made at once
from rag.chain import make_chain
from rag.retrieve import SearchIndex
from rag.settings import PROJECT_ROOT, Settings

WORK = PROJECT_ROOT / "bench" / "work"
KINDS = ("resolved_date", "date_scoped", "latest", "out_of_range")


def time_items(root: Path, half: str) -> list[dict]:
    """The time dev set's questions of one half: odd ids (t01, t03, ...) tune, even ids test."""
    rows = read_jsonl(root / "bench" / "news_time_dev.jsonl")
    return [r for r in rows if (int(r["id"][1:]) % 2 == 1) == (half == "tune")]


def time_corpus(root: Path) -> list[dict]:
    """The news corpus (1,025 articles of the same weeks) plus every article the time dev set names: its answers,
    the date_scoped questions' same-topic distractors of other days and the latest questions' older reports."""
    rows = news_corpus(root, news_dev(root))
    have = {r["id"] for r in rows}
    wanted = set()
    for r in read_jsonl(root / "bench" / "news_time_dev.jsonl"):
        wanted |= {r.get("doc_id"), *r.get("distractor_doc_ids", ()), *r.get("older_doc_ids", ())}
    return rows + [r for r in all_rows(root) if r["id"] in wanted and r["id"] not in have]


def time_index(root: Path, settings: Settings, embedder) -> Path:
    """The time corpus's index, started from a copy of the news index so its articles are not embedded again."""
    seeds, index = WORK / "time-seeds", WORK / "time-index"
    if not (seeds / "news.jsonl").is_file():
        write_records(seeds / "news.jsonl", time_corpus(root))
    if not index.exists() and (WORK / "news-index").is_dir():
        shutil.copytree(WORK / "news-index", index)
    build_index(seeds, index, settings=settings, embedder=embedder, progress=True)
    return index


def _holds(text: str, spans: list[str]) -> bool:
    return any(s in text for s in spans)


def newest_first(texts: list[str], item: dict) -> bool:
    """The first text holding any report of a latest question's story holds the newest one's evidence."""
    for t in texts:
        if _holds(t, item["evidence"]):
            return True
        if _holds(t, item["older_evidence"]):
            return False
    return False


def score_item(chain, item: dict) -> bool:
    """Whether the chain's answer to one time question is right for its kind."""
    a = chain.invoke(item["q"])
    quotes = [c.quote for c in a.citations]
    if item["kind"] == "out_of_range":
        return not a.found and bool(a.missing)
    if not a.found:
        return False
    if item["kind"] == "resolved_date":
        day = item["answer_date"]
        return any(d["date"] == day for c in a.citations for d in c.dates)
    if item["kind"] == "date_scoped":
        first = a.citations[0]  # the question's article, or another report of that day holding its evidence
        own = any(d.split("#")[-1] == item["doc_id"] for d in (first.doc_id, *first.also_in))
        return _holds(" ".join(quotes), item["evidence"]) and (own or _holds(first.quote, item["evidence"]))
    return newest_first(quotes, item)


def naive_item(naive, item: dict) -> bool:
    """The naive recipe's top-3 chunks: evidence among them (date_scoped), the newest report first (latest)."""
    texts = [text for _, text in naive.top(item["q"], 3)]
    if item["kind"] == "date_scoped":
        return _holds(" ".join(texts), item["evidence"])
    return newest_first(texts, item)


def time_figures(root: Path, settings: Settings, embedder, half: str = "test", naive: bool = True) -> dict:
    """Each kind's share right on one half, ours with and without the time prior, and the naive recipe's."""
    index_dir = time_index(root, settings, embedder)
    items = time_items(root, half)
    flat = dataclasses.replace(settings, time_weight=0.0, recency_weight=0.0)
    chains = {
        "ours": make_chain(SearchIndex(index_dir, settings, embedder=embedder)),
        "ours, no time prior": make_chain(SearchIndex(index_dir, flat, embedder=embedder)),
    }
    out: dict = {"half": half, "articles": len(SearchIndex(index_dir, settings, embedder=embedder).doc_ids)}
    for kind in KINDS:
        of_kind = [i for i in items if i["kind"] == kind]
        row = {"n": len(of_kind)}
        for name, chain in chains.items():
            right = [i["id"] for i in of_kind if score_item(chain, i)]
            row[name] = len(right) / len(of_kind)
            row[f"{name}: right"] = right
        out[kind] = row
    if naive:
        from bench.baseline import NaiveChunkRetriever

        recipe = NaiveChunkRetriever(embedder.model, time_corpus(root), WORK)
        for kind in ("date_scoped", "latest"):
            of_kind = [i for i in items if i["kind"] == kind]
            out[kind]["naive recipe (top-3 chunks)"] = sum(naive_item(recipe, i) for i in of_kind) / len(of_kind)
    return out


def main(argv: list[str] | None = None) -> int:
    from rag.embed import Embedder

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--half", default="tune", choices=("tune", "test"))
    parser.add_argument("--time-weight", type=float, default=None)
    parser.add_argument("--recency-weight", type=float, default=None)
    parser.add_argument("--naive", action="store_true", help="also score the naive LangChain recipe")
    args = parser.parse_args(argv)
    settings = Settings.from_env(time_weight=args.time_weight, recency_weight=args.recency_weight)
    embedder = Embedder(str(settings.model), settings.precision)
    figures = time_figures(data_dir(None), settings, embedder, args.half, args.naive)
    for kind in KINDS:
        print(kind, {k: v for k, v in figures[kind].items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
