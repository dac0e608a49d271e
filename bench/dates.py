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
    return {
        "articles": len(rows),
        "date from the file name alone (equal to the record's day)": named / len(rows),
        "date from a dateline alone": sum(bool(d) for d in lines) / len(rows),
        "datelines before the record's date (the record's is a collection date)": earlier,
    }
