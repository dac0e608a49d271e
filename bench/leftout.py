"""Left-out corpora: near-topic questions whose answer was taken out of the index, for tuning and reporting refusal.

- News: the news benchmark corpus without the dev set's articles and without any article holding one of their
  evidence spans, filled up to the same size with other SaudiNewsNet articles (fixed seed). Every answerable dev
  question asked of it is a question on a topic the corpus covers (same outlets, same weeks) whose fact is gone.
- XQuAD: half the paragraphs of every article indexed (even positions, or odd when swapped). A question about a
  left-out paragraph still finds its article's other paragraphs: same topic, other facts.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from pathlib import Path

import numpy as np

from bench.data import DataMissing, NewsItem, Question, news_corpus, read_jsonl, write_bulk, write_records, xquad
from rag.building import build_index  # as `rag index` does: the new generation's caches made at once
from rag.settings import PROJECT_ROOT, Settings

WORK = PROJECT_ROOT / "bench" / "work"


def all_rows(root: Path) -> list[dict]:
    path = root / "corpora" / "saudinewsnet-20k.jsonl.gz"
    if not path.is_file():
        raise DataMissing(f"error: {path} not found: the left-out benchmark needs SaudiNewsNet")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def leftout_corpus(root: Path, items: list[NewsItem], seed: int = 0) -> list[dict]:
    """The news corpus with every answer taken out: no dev article, no article holding an evidence span; the same
    number of articles, filled up from the rest of SaudiNewsNet with a fixed seed."""
    full = news_corpus(root, items)
    spans = {e for i in items for ev in i.evidence for e in ev}
    own = {i.doc_id for i in items if i.doc_id}

    def holds_answer(r: dict) -> bool:
        return r["id"] in own or any(s in r["text"] for s in spans)

    kept = [r for r in full if not holds_answer(r)]
    used = {r["id"] for r in full}
    others = [r for r in all_rows(root) if r["id"] not in used]
    random.Random(seed + 1).shuffle(others)
    fill = [r for r in others if not holds_answer(r)][: len(full) - len(kept)]
    return kept + fill


def leftout_news_index(root: Path, items: list[NewsItem], settings: Settings, embedder, news_index: Path) -> Path:
    """The left-out news index, started from a copy of the news index so shared articles are not embedded again."""
    seeds, index = WORK / "leftout-seeds", WORK / "leftout-index"
    path = seeds / "news.jsonl"
    if not path.is_file():
        write_records(path, leftout_corpus(root, items))
    if not index.exists() and news_index.is_dir():
        shutil.copytree(news_index, index)
    build_index(seeds, index, settings=settings, embedder=embedder, progress=True)
    return index


def xquad_paragraph_split(root: Path, swapped: bool = False) -> tuple[dict[str, str], set[str]]:
    """Half the paragraphs of every XQuAD article (even positions in id order; odd when swapped), and their ids."""
    contexts, _, _, titles = xquad(root)
    by_title: dict[str, list[str]] = {}
    for cid in sorted(contexts):
        by_title.setdefault(titles[cid], []).append(cid)
    kept = {cid for cids in by_title.values() for i, cid in enumerate(cids) if i % 2 == int(swapped)}
    return {c: contexts[c] for c in sorted(kept)}, kept


def xquad_paragraph_index(root: Path, settings: Settings, embedder, swapped: bool = False) -> tuple[Path, set[str]]:
    """The index of one paragraph split, built once and reused."""
    half, kept = xquad_paragraph_split(root, swapped)
    name = "xquad-para-odd" if swapped else "xquad-para-even"
    seeds = WORK / f"{name}-seeds"
    write_bulk(seeds, "xquad.jsonl", half)
    build_index(seeds, WORK / f"{name}-index", settings=settings, embedder=embedder, progress=True)
    return WORK / f"{name}-index", kept


def paragraph_questions(questions: list[Question], kept: set[str]) -> list[tuple[str, bool]]:
    """(question, answerable) for a paragraph split: answerable when its paragraph is indexed."""
    return [(q.text, q.context_id in kept) for q in questions]


def sweep(m_neg: np.ndarray, m_pos: np.ndarray) -> dict[float, tuple[float, float]]:
    """Refused (of the unanswerable) and answered (of the answerable) as every deciding threshold moves by -0.30 ..
    +0.30; `m_*` are each question's probability less its threshold (`bench.calibrate.decisions`)."""
    return {
        round(float(d), 2): (float((m_neg < d).mean()) if len(m_neg) else 1.0, float((m_pos >= d).mean()))
        for d in np.arange(-0.3, 0.301, 0.05)
    }


def thresholds(model, reader: bool) -> str:
    """The thresholds that decide, in words: the plain model's, and where a reader is built, the band of the plain
    model's probability that the reader's model decides, with its threshold."""
    text = f"{model.threshold} (Arabic), {model.threshold_cross} (Latin)"
    inner = model.with_reader
    if not reader or inner is None:
        return text
    bands = (
        f"[{lo:g}, {hi:g}) at {t}"
        for (lo, hi), t in ((inner.band, inner.threshold), (inner.band_cross, inner.threshold_cross))
    )
    return text + "; the reader's model decides the plain probabilities in {} (Arabic), {} (Latin)".format(*bands)


def leftout_figures(root: Path, settings: Settings, embedder, quick: bool = False) -> dict:
    """Refusal of near-topic questions on the test halves (nothing here was tuned on them):
    - news: each answerable test-half question of the news dev set asked of the corpus with every answer taken out,
      beside the same questions answered on the full corpus, by language, with the trade-off curve;
    - XQuAD: test-quarter questions over half the paragraphs of every article (both halves in turn);
    - news dev unanswerable questions (test half) and the time dev set's out-of-range questions (every other one)."""
    from bench.calibrate import decisions, news_index, xquad_quarter
    from bench.data import news_dev
    from rag.chain import make_chain
    from rag.refusal import RefusalModel
    from rag.retrieve import SearchIndex

    model = RefusalModel.load(settings.refusal_model)
    every = news_dev(root)
    full = SearchIndex(news_index(root, settings, embedder), settings, embedder=embedder)
    leftout = SearchIndex(
        leftout_news_index(root, every, settings, embedder, WORK / "news-index"), settings, embedder=embedder
    )
    reader = full.reader is not None and model.with_reader is not None
    out: dict = {
        "threshold": thresholds(model, reader),
        "reader": reader,
        "news": {},
        "xquad": {},
    }
    full_chain, leftout_chain = make_chain(full), make_chain(leftout)
    test = [i for i in every if i.half == "test"]
    for lang in ("en", "ar"):
        items = [i for i in test if i.lang == lang and i.kind in ("single", "followup")]
        on_full = [full_chain.invoke(i.questions[0]) for i in items]
        on_leftout = [leftout_chain.invoke(i.questions[0]) for i in items]
        m_pos, read_pos = decisions(full, model, [i.questions[0] for i in items])
        m_neg, read_neg = decisions(leftout, model, [i.questions[0] for i in items])
        out["news"][lang] = {
            "n": len(items),
            "left-out refused": float(np.mean([not a.found for a in on_leftout])),
            "left-out refused or flagged partial": float(np.mean([not a.found or bool(a.partial) for a in on_leftout])),
            "answered and flagged partial (full corpus)": float(
                np.mean([a.found and bool(a.partial) for a in on_full])
            ),
            "answered (full corpus)": float(np.mean([a.found for a in on_full])),
            "evidence in quote (full corpus)": float(
                np.mean(
                    [
                        any(e in c.quote for c in a.citations for e in i.evidence[0])
                        for a, i in zip(on_full, items, strict=True)
                    ]
                )
            ),
            "refusals with a reason": float(np.mean([bool(a.missing) for a in on_leftout if not a.found] or [0])),
            "read by the reader": float(np.concatenate([read_pos, read_neg]).mean()),
            "sweep": sweep(m_neg, m_pos),
        }
    unanswerable = [i for i in test if i.kind == "unanswerable"]
    out["unanswerable refused"] = float(np.mean([not full_chain.invoke(i.questions[0]).found for i in unanswerable]))
    out["n unanswerable"] = len(unanswerable)
    time_rows = read_jsonl(root / "bench" / "news_time_dev.jsonl")
    out_of_range = [r for r in time_rows if r.get("kind") == "out_of_range"][1::2]
    answers = [full_chain.invoke(r["q"]) for r in out_of_range]
    out["out of range refused"] = float(np.mean([not a.found for a in answers])) if answers else 0.0
    out["out of range refused with the coverage reason"] = (
        float(np.mean([not a.found and ("2015" in a.missing) for a in answers])) if answers else 0.0
    )
    out["n out of range"] = len(answers)

    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    for swapped in (False, True):
        index_dir, kept = xquad_paragraph_index(root, settings, embedder, swapped)
        index = SearchIndex(index_dir, settings, embedder=embedder)
        for lang, qs in (("en", en), ("ar", ar)):
            qs = [q for q in qs if quarter[q.context_id] in (2, 3)]
            if quick:
                qs = qs[::3]
            pairs = paragraph_questions(qs, kept)
            m, read = decisions(index, model, [q for q, _ in pairs])
            answerable = np.array([a for _, a in pairs])
            row = {
                "read by the reader": float(read.mean()),
                "refused (paragraph left out)": float((m[~answerable] < 0).mean()),
                "answered (paragraph indexed)": float((m[answerable] >= 0).mean()),
                "n": f"{int((~answerable).sum())} + {int(answerable.sum())}",
            }
            if not swapped:
                row["sweep"] = sweep(m[~answerable], m[answerable])
            out["xquad"][f"{lang}{' (swapped)' if swapped else ''}"] = row
    return out
