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


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def xquad(root: Path) -> tuple[dict[str, str], list[Question], list[Question], dict[str, str]]:
    """Contexts {id: text}, English and Arabic questions, and each context's article title."""
    contexts = {r["context_id"]: r["text_ar"] for r in read_jsonl(root / "bench" / "xquad_contexts_ar.jsonl")}
    titles = {r["context_id"]: r["title"] for r in read_jsonl(root / "bench" / "xquad_contexts_ar.jsonl")}
    rows = read_jsonl(root / "bench" / "xquad_xling.jsonl")
    en = [Question(r["id"], r["question_en"], r["answer_ar"], r["context_id"]) for r in rows]
    ar = [Question(r["id"], r["question_ar"], r["answer_ar"], r["context_id"]) for r in rows]
    return contexts, en, ar, titles


def arcd(root: Path, split: str) -> tuple[dict[str, str], list[Question]]:
    contexts = {r["context_id"]: r["text_ar"] for r in read_jsonl(root / "bench" / "arcd_contexts_ar.jsonl")}
    rows = [r for r in read_jsonl(root / "bench" / "arcd.jsonl") if r["split"] == split]
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


def write_records(path: Path, rows: list[dict]) -> None:
    """SaudiNewsNet rows as one .jsonl bulk file (id, title, text, url, date)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps({k: r[k] for k in ("id", "title", "text", "url", "date")}, ensure_ascii=False) + "\n")


def sample(items: list, n: int | None, seed: int = 0) -> list:
    if n is None or n >= len(items):
        return items
    return random.Random(seed).sample(items, n)


@dataclass
class NewsItem:
    """One line of news_qa_dev.jsonl: a single question, a follow-up pair, or an unanswerable question."""

    qid: str
    kind: str  # "single" | "followup" | "unanswerable"
    lang: str
    doc_id: str  # "" for unanswerable
    questions: list[str]  # one question, or [q1, q2] for a follow-up pair
    evidence: list[list[str]]  # evidence strings per question ([] for unanswerable)
    half: str  # "tune" | "test": split by article (unanswerable: by id)
    type: str = ""  # what a single question asks: "how_many", "who", "where", "when", "why", "what" ("" unmarked)


def _half(key: str) -> str:
    """A fixed split by a stable hash of the article id (or question id)."""
    import hashlib

    return "tune" if int(hashlib.sha256(key.encode()).hexdigest(), 16) % 2 == 0 else "test"


def news_dev(root: Path) -> list[NewsItem]:
    """The news dev set, each item assigned to the tuning or the test half by its article."""
    items = []
    seen_unanswerable: dict[str, int] = {}
    for r in read_jsonl(root / "bench" / "news_qa_dev.jsonl"):
        if r.get("unanswerable"):  # no article: alternate within each language, so both halves get both
            n = seen_unanswerable[r["lang"]] = seen_unanswerable.get(r["lang"], -1) + 1
            half = "tune" if n % 2 == 0 else "test"
            items.append(NewsItem(r["id"], "unanswerable", r["lang"], "", [r["q"]], [], half))
        elif "q1" in r:
            items.append(
                NewsItem(
                    r["id"],
                    "followup",
                    r["lang"],
                    r["doc_id"],
                    [r["q1"], r["q2"]],
                    [r["evidence1"], r["evidence2"]],
                    _half(r["doc_id"]),
                )
            )
        else:
            items.append(
                NewsItem(
                    r["id"],
                    "single",
                    r["lang"],
                    r["doc_id"],
                    [r["q"]],
                    [r["evidence"]],
                    _half(r["doc_id"]),
                    r.get("type", ""),
                )
            )
    return items


def news_corpus(root: Path, items: list[NewsItem], n_other: int = 950, seed: int = 0) -> list[dict]:
    """The dev set's own articles plus `n_other` other SaudiNewsNet articles chosen with a fixed seed."""
    path = root / "corpora" / "saudinewsnet-20k.jsonl.gz"
    if not path.is_file():
        raise DataMissing(f"error: {path} not found: the news benchmark needs SaudiNewsNet")
    wanted = {i.doc_id for i in items if i.doc_id}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    own = [r for r in rows if r["id"] in wanted]
    others = [r for r in rows if r["id"] not in wanted]
    random.Random(seed).shuffle(others)
    return own + others[:n_other]
