"""How many SaudiNewsNet articles get a date when given as .txt: with the date only in the file name, or only in
the text (a dateline); and how often a dateline disagrees with the record's date."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from rag.dates import article_date, dateline


def date_figures(root: Path, n: int | None = None) -> dict:
    with gzip.open(root / "corpora" / "saudinewsnet-20k.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh][:n]
    named = sum(article_date("", {}, f"{r['id']}.txt", r["text"])[0] == r["date"][:10] for r in rows)
    lines = [dateline(r["text"]) for r in rows]
    earlier = sum(bool(d) and d < r["date"][:10] for d, r in zip(lines, rows, strict=True))
    anywhere = sum(bool(dateline(r["text"], len(r["text"]))) for r in rows)
    return {
        "articles": len(rows),
        "date from the file name alone (equal to the record's day)": named / len(rows),
        "date from a dateline alone": sum(bool(d) for d in lines) / len(rows),
        "articles with a full date anywhere in the text (what any reader of the text could reach)": anywhere
        / len(rows),
        "datelines before the record's date (the record's is a collection date)": earlier,
    }


def resolved_day_figures(root: Path) -> dict:
    """The time dev set's resolved_date questions: is the relative day in the article (`relative_text`) resolved
    against the article's stored date to `answer_date`? (The resolver, not retrieval: every item is asked.)"""
    from bench.data import read_jsonl
    from rag.dates import relative_days
    from rag.timeq import parse_date

    items = [r for r in read_jsonl(root / "bench" / "news_time_dev.jsonl") if r.get("kind") == "resolved_date"]
    want = {r["doc_id"] for r in items}
    with gzip.open(root / "corpora" / "saudinewsnet-20k.jsonl.gz", "rt", encoding="utf-8") as fh:
        docs = {r["id"]: r for r in map(json.loads, fh) if r["id"] in want}
    right = 0
    for r in items:
        doc = docs[r["doc_id"]]
        at = doc["text"].find(r["relative_text"])
        found = relative_days(doc["text"], parse_date(doc["date"]), max(0, at), at + len(r["relative_text"]))
        right += any(d["date"] == r["answer_date"] for d in found)
    return {"resolved_date items": len(items), "relative day resolved to answer_date": right / len(items)}
