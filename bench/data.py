"""Benchmark data from ../shared (or RAG_BENCH_DATA): XQuAD, ARCD and SaudiNewsNet, never copied into the repo."""

from __future__ import annotations

import gzip
import json
import os
import random
from dataclasses import dataclass
from pathlib import Path


class DataMissing(SystemExit):
    pass


@dataclass
class Question:
    qid: str
    text: str
    answer: str
    context_id: str


def data_dir(shared: str | Path | None) -> Path:
    root = Path(os.environ.get("RAG_BENCH_DATA") or shared or "../shared")
    if not (root / "bench" / "xquad_xling.jsonl").is_file():
        raise DataMissing(
            f"error: benchmark data not found under {root} (expected bench/xquad_xling.jsonl): "
            "put ../shared beside the repo or set RAG_BENCH_DATA"
        )
    return root


def _jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def xquad(root: Path) -> tuple[dict[str, str], list[Question], list[Question], dict[str, str]]:
    """Contexts {id: text}, English and Arabic questions, and each context's article title."""
    contexts = {r["context_id"]: r["text_ar"] for r in _jsonl(root / "bench" / "xquad_contexts_ar.jsonl")}
    titles = {r["context_id"]: r["title"] for r in _jsonl(root / "bench" / "xquad_contexts_ar.jsonl")}
    rows = _jsonl(root / "bench" / "xquad_xling.jsonl")
    en = [Question(r["id"], r["question_en"], r["answer_ar"], r["context_id"]) for r in rows]
    ar = [Question(r["id"], r["question_ar"], r["answer_ar"], r["context_id"]) for r in rows]
    return contexts, en, ar, titles


def arcd(root: Path, split: str) -> tuple[dict[str, str], list[Question]]:
    contexts = {r["context_id"]: r["text_ar"] for r in _jsonl(root / "bench" / "arcd_contexts_ar.jsonl")}
    rows = [r for r in _jsonl(root / "bench" / "arcd.jsonl") if r["split"] == split]
    return contexts, [Question(r["id"], r["question_ar"], r["answer_ar"], r["context_id"]) for r in rows]


def saudinewsnet(root: Path, n: int, seed: int = 0) -> list[dict]:
    path = root / "corpora" / "saudinewsnet-20k.jsonl.gz"
    if not path.is_file():
        raise DataMissing(f"error: {path} not found: the scale benchmark needs SaudiNewsNet")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def write_bulk(folder: Path, name: str, contexts: dict[str, str], titles: dict[str, str] | None = None) -> Path:
    """One .jsonl bulk file, one paragraph per article (empty title unless given)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", encoding="utf-8") as fh:
        for cid, text in contexts.items():
            title = (titles or {}).get(cid, "")
            fh.write(json.dumps({"id": cid, "title": title, "text": text}, ensure_ascii=False) + "\n")
    return path


def sample(items: list, n: int | None, seed: int = 0) -> list:
    if n is None or n >= len(items):
        return items
    return random.Random(seed).sample(items, n)
