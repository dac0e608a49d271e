"""Short answers, measured: SQuAD-style exact match and F1 against gold spans, and news answers' shape.

Usage: python -m bench.shortbench [--half tune|test] [--shared ../shared]
       [--sweep | --sweep-reader | --reader-cost | --quotes]

- XQuAD English->Arabic and Arabic->Arabic (gold `answer_ar`) over the whole XQuAD index, and ARCD-test over its own
  index: F1 over every question (no short answer scores 0), and over the questions that ask for a number, a date
  or a person's name.
- News dev: of the how_many/who/where/when questions, the share given a short answer that holds an evidence span,
  and given one that does not; quoted characters per answer (median), citations per answer, and the share of shown
  citations that hold the evidence.

Normalisation before comparing (as MLQA's Arabic evaluation): Arabic diacritics and tatweel removed, alef forms
(أ إ آ ٱ) to ا, Arabic-Indic digits to Western, punctuation removed, the article "ال" taken off each word, and
whitespace collapsed.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections import Counter
from pathlib import Path

from bench.data import arcd, data_dir, news_dev, write_bulk, xquad
from rag.settings import PROJECT_ROOT, Settings
from rag.short import asks_for, date_candidates, number_candidates
from rag.timeq import DIGITS

WORK = PROJECT_ROOT / "bench" / "work"
_DIACRITICS = re.compile(r"[\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed\u0640]")
_PUNCT = re.compile(r"[^\w\s]")


def normalize(text: str) -> list[str]:
    """The words of an answer, normalised for comparison (see the module's docstring)."""
    text = _DIACRITICS.sub("", text.translate(DIGITS))
    text = re.sub("[أإآٱ]", "ا", text)
    text = _PUNCT.sub(" ", text)
    return [w[2:] if w.startswith("ال") and len(w) > 3 else w for w in text.split()]


def f1(prediction: str, gold: str) -> float:
    p, g = normalize(prediction), normalize(gold)
    common = sum((Counter(p) & Counter(g)).values())
    if not p or not g or not common:
        return float(p == g)
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def exact(prediction: str, gold: str) -> float:
    return float(normalize(prediction) == normalize(gold))


def typed(question: str) -> bool:
    return bool(asks_for(question))


def span_rows(chain, questions) -> dict[str, float]:
    """EM and F1 of the short answers, over every question and over the typed ones (number or date asked)."""
    rows = []
    for q in questions:
        a = chain.invoke(q.text)
        short = a.short.get("text", "") if a.found else ""
        rows.append((typed(q.text), bool(short), exact(short, q.answer), f1(short, q.answer)))
    typed_rows = [r for r in rows if r[0]]

    def mean(xs):
        return round(statistics.fmean(xs), 3) if xs else 0.0

    return {
        "n": len(rows),
        "EM": mean([r[2] for r in rows]),
        "F1": mean([r[3] for r in rows]),
        "n typed": len(typed_rows),
        "given (typed)": mean([r[1] for r in typed_rows]),
        "EM (typed)": mean([r[2] for r in typed_rows]),
        "F1 (typed)": mean([r[3] for r in typed_rows]),
        "F1 when given": mean([r[3] for r in rows if r[1]]),
    }


def holds(short: dict, evidence: list[str]) -> bool:
    """A short answer holds the evidence when its normalised words are all in one evidence span, or when its value
    is one an evidence span states (a day written "5-7-2015م" and quoted as "يوم الأحد" that resolves to it)."""
    words = normalize(short["text"])
    if words and any(set(words) <= set(normalize(e)) for e in evidence):
        return True
    values = {v for e in evidence for _, _, _, v, _, _ in number_candidates(e, 0, len(e))}
    values |= {v for e in evidence for _, _, v, _ in date_candidates(e, 0, len(e), None)}
    return bool(short["value"]) and short["value"] in values


def news_rows(chain, items) -> dict[str, dict[str, float]]:
    """Per language: short answers on the fact questions, and the shape of every answer."""
    out = {}
    for lang in ("en", "ar"):
        mine = [i for i in items if i.lang == lang and i.kind in ("single", "followup")]
        answers = [(i, chain.invoke(i.questions[0])) for i in mine]
        facts = [(i, a) for i, a in answers if i.type in ("how_many", "who", "where", "when")]
        held = [holds(a.short, i.evidence[0]) for i, a in facts if a.found and a.short]
        found = [(i, a) for i, a in answers if a.found]
        cited = [any(e in c.quote for e in i.evidence[0]) for i, a in found for c in a.citations]
        out[lang] = {
            "n fact questions": len(facts),
            "short given, holds evidence": round(sum(held) / max(1, len(facts)), 3),
            "short given, wrong": round((len(held) - sum(held)) / max(1, len(facts)), 3),
            "quoted characters per answer (median)": statistics.median(
                [sum(len(c.quote) for c in a.citations) for _, a in found] or [0]
            ),
            "citations per answer": round(statistics.fmean([len(a.citations) for _, a in found] or [0]), 2),
            "shown citations holding the evidence": round(statistics.fmean(cited or [0]), 3),
        }
    return out


def sweep(root: Path, settings: Settings) -> None:
    """Given right and wrong short answers over the lead a short answer needs (`rag.short.MIN_LEAD`, and
    `MIN_LEAD_PERSON` for a name), on the tuning
    halves: XQuAD's number, date and who questions (right: F1 >= 0.5) and the news dev fact questions (right: holds
    the evidence), by set, language and what is asked (a name, or a number or a date). Prints one line per lead."""
    from bench.calibrate import xquad_quarter
    from rag.chain import make_chain
    from rag.retrieve import SearchIndex

    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    rows: dict[str, list[tuple[float, bool]]] = {}
    asked: Counter[str] = Counter()

    def group(name: str, question: str) -> str:  # a name asked for, or a number or a date
        return f"{name} {'who' if asks_for(question) == 'person' else 'number/date'}"

    import rag.short

    kept = rag.short.MIN_LEAD, rag.short.MIN_LEAD_PERSON
    rag.short.MIN_LEAD = rag.short.MIN_LEAD_PERSON = -1.0  # every short answer, with its lead
    try:
        chain = make_chain(SearchIndex(WORK / "xquad-index", settings))
        for lang, qs in (("en", en), ("ar", ar)):
            for q in qs:
                if quarter[q.context_id] in (0, 1) and typed(q.text):
                    key = group(f"xquad {lang}", q.text)
                    asked[key] += 1
                    a = chain.invoke(q.text)
                    if a.found and a.short:
                        rows.setdefault(key, []).append((a.short["lead"], f1(a.short["text"], q.answer) >= 0.5))
        news = make_chain(SearchIndex(WORK / "news-index", settings))
        for i in news_dev(root):
            if i.half == "tune" and i.type in ("how_many", "when", "who", "where"):
                key = group(f"news {i.lang}", i.questions[0])
                asked[key] += 1
                a = news.invoke(i.questions[0])
                if a.found and a.short:
                    rows.setdefault(key, []).append((a.short["lead"], holds(a.short, i.evidence[0])))
    finally:
        rag.short.MIN_LEAD, rag.short.MIN_LEAD_PERSON = kept
    for lead in (0.0, 0.02, 0.03, 0.04, 0.06, 0.08, 0.1):
        cells = []
        for name in sorted(asked):
            kept = [ok for x, ok in rows.get(name, []) if x >= lead]
            n = asked[name]
            cells.append(f"{name} (n={n}): right {sum(kept) / n:.2f} wrong {(len(kept) - sum(kept)) / n:.2f}")
        print(f"lead >= {lead:.2f}: " + " | ".join(cells))


def sweep_reader(root: Path, settings: Settings, embedder) -> None:
    """Right and wrong reader answers over the reader's gate (`rag.reader.READER_GATE`), on what the reader never
    trained on: XQuAD's second quarter (its fact questions; right: F1 >= 0.5) and the news dev tuning half's fact
    questions (right: holds the evidence), by set and language. Prints one line per gate; the reader is the one in
    RAG_READER (`make reader`)."""
    import rag.chain
    import rag.reader
    from bench.calibrate import news_index, xquad_index, xquad_quarter
    from rag.chain import make_chain
    from rag.reader import asks_fact
    from rag.retrieve import SearchIndex

    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    xq_index = SearchIndex(xquad_index(root, settings, embedder), settings, embedder=embedder)
    xquad_chain = make_chain(xq_index)
    news = make_chain(SearchIndex(news_index(root, settings, embedder), settings, embedder=embedder))
    if xq_index.reader is None:
        raise SystemExit(f"no reader at {settings.reader}: run `make reader`")
    rows: dict[str, list[tuple[float, bool, list[tuple[int, int, bool]]]]] = {}

    def record(key: str, chain, question: str, evidence: list[str], right) -> None:
        """The reader's score (-inf when it gave nothing), whether it was right, and each citation's number,
        characters and evidence (with `rag.chain.ALONE_GATE` off: every citation kept)."""
        a = chain.invoke(question)
        by_reader = a.found and a.short.get("by") == "reader"
        score = a.short["lead"] if by_reader else float("-inf")
        rows.setdefault(key, []).append((score, by_reader and right(a.short), _cited(a, evidence) if a.found else []))

    kept = rag.reader.READER_GATE, rag.chain.ALONE_GATE
    rag.reader.READER_GATE, rag.chain.ALONE_GATE = float("-inf"), float("inf")  # every span, every citation
    try:
        for lang, qs in (("en", en), ("ar", ar)):
            for q in qs:
                if quarter[q.context_id] == 1 and asks_fact(q.text):
                    record(
                        f"xquad {lang}", xquad_chain, q.text, [q.answer], lambda s, q=q: f1(s["text"], q.answer) >= 0.5
                    )
        for i in news_dev(root):
            if i.half == "tune" and i.type in ("how_many", "when", "who", "where"):
                record(f"news {i.lang}", news, i.questions[0], i.evidence[0], lambda s, i=i: holds(s, i.evidence[0]))
    finally:
        rag.reader.READER_GATE, rag.chain.ALONE_GATE = kept
    (WORK / "sweep-reader.json").write_text(json.dumps(rows))  # to read again without the reader
    for gate in (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 14.0):
        print(
            f"gate >= {gate:.1f}: " + " | ".join(_gate_cell(name, rows[name], gate) for name in sorted(rows)),
            flush=True,
        )


def reader_cost(root: Path, settings: Settings, n: int = 30) -> None:
    """answer() time with and without the reader, interleaved in one run (the news index, news dev fact questions):
    a ratio on this machine, not a timing to compare across machines."""
    import dataclasses
    import time

    from rag.chain import make_chain
    from rag.retrieve import SearchIndex

    on = make_chain(SearchIndex(WORK / "news-index", settings))
    off = make_chain(SearchIndex(WORK / "news-index", dataclasses.replace(settings, reader=WORK / "no-reader")))
    kinds = ("how_many", "who", "where", "when", "what")
    questions = [i.questions[0] for i in news_dev(root) if i.type in kinds][:n]
    times: dict[str, list[float]] = {"with": [], "without": []}
    for q in questions[:3] + questions:  # the first three warm both up
        for name, chain in (("with", on), ("without", off)):
            t = time.perf_counter()
            chain.invoke(q)
            times[name].append(time.perf_counter() - t)
    with_, without = (statistics.median(times[k][3:]) * 1000 for k in ("with", "without"))
    print(f"answer() p50 over {len(questions)} questions: {with_:.0f} ms with the reader, {without:.0f} ms without")


def _cited(a, evidence: list[str]) -> list[tuple[int, int, bool]]:
    """Each citation of answer `a`: its number where it holds the reader's short answer (else 0), its characters,
    and whether it holds an evidence span."""
    held = a.short.get("citation") if a.short.get("by") == "reader" else None
    return [(c.n if c.n == held else 0, len(c.quote), any(e in c.quote for e in evidence)) for c in a.citations]


def _gate_cell(name: str, rows: list, gate: float) -> str:
    """Right and wrong reader answers from `gate`, and, were the answers from it shown with their own quote alone:
    evidence in quote, quoted characters (median) and the share of shown citations holding the evidence."""
    given = [right for score, right, _ in rows if score >= gate]
    shown = [[c for c in cites if score < gate or c[0]] for score, _, cites in rows if cites]
    n = len(rows)
    return (
        f"{name} (n={n}): right {sum(given) / n:.2f} wrong {(len(given) - sum(given)) / n:.2f}; alone: evidence "
        f"{statistics.fmean([any(c[2] for c in s) for s in shown] or [0]):.2f} characters "
        f"{statistics.median([sum(c[1] for c in s) for s in shown] or [0]):.0f} holding "
        f"{statistics.fmean([c[2] for s in shown for c in s] or [0]):.2f}"
    )


def quote_grid(root: Path, settings: Settings, half: str = "tune") -> None:
    """Evidence in the quotes, quoted characters (median), share of shown citations holding the evidence and
    citations per answer, over the quote margins, the sentences quoted and RAG_QUOTE_CHARS, by set and language
    (news dev and a third of the XQuAD questions of one half). Prints one line per setting."""
    import dataclasses

    from bench.calibrate import xquad_quarter
    from rag.answering import ExtractiveAnswerer, score_sentences
    from rag.chain import present
    from rag.language import is_cross_lingual
    from rag.retrieve import HybridRetriever, SearchIndex

    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    keep = (0, 1) if half == "tune" else (2, 3)
    news = [i for i in news_dev(root) if i.half == half and i.kind in ("single", "followup")]
    xq = [q for qs in (en, ar) for q in qs[::3] if quarter[q.context_id] in keep]
    sets = []
    for name, qs in (
        ("news", [(i.questions[0], i.evidence[0]) for i in news]),
        ("xquad", [(q.text, [q.answer]) for q in xq]),
    ):
        index = SearchIndex(WORK / f"{name}-index", settings)
        retriever = HybridRetriever(index=index)
        rows = []
        for q, evidence in qs:
            docs = retriever.invoke(q)
            rows.append((q, evidence, docs, score_sentences(index, q, docs)))
        sets.append((name, index, rows))
    grid = [
        (m, mc, n, qc)
        for qc in (0, settings.quote_chars)
        for m, mc, n in ((0.06, 0.2, 5), (0.06, 0.1, 4), (0.03, 0.1, 3), (0.0, 0.0, 1))
    ]
    for margin, margin_cross, most, quote_chars in grid:
        cells = []
        for name, index, rows in sets:
            index.settings = dataclasses.replace(settings, quote_chars=quote_chars)
            answerer = ExtractiveAnswerer(index.article_text, 3, margin, margin_cross, most)
            for lang in ("en", "ar"):
                hits, chars, held, cited = [], [], [], []
                for q, evidence, docs, scored in rows:
                    if is_cross_lingual(q) != (lang == "en"):
                        continue
                    a = answerer(q, docs, scored)
                    present(index, a, q, q)
                    hits.append(any(e in c.quote for c in a.citations for e in evidence))
                    chars.append(sum(len(c.quote) for c in a.citations))
                    held += [any(e in c.quote for e in evidence) for c in a.citations]
                    cited.append(len(a.citations))
                cells.append(
                    f"{name} {lang} (n={len(hits)}): evidence {statistics.fmean(hits):.3f} characters "
                    f"{statistics.median(chars):.0f} holding {statistics.fmean(held):.2f} citations "
                    f"{statistics.fmean(cited):.2f}"
                )
        print(
            f"margin {margin}/{margin_cross} (Arabic/Latin), quoted <= {most}, RAG_QUOTE_CHARS={quote_chars}: "
            + " | ".join(cells),
            flush=True,
        )


def short_figures(root: Path, settings: Settings, embedder, half: str = "test") -> dict:
    """Short-answer figures on one half: XQuAD articles by quarter (0, 1 tune; 2, 3 test), ARCD-test split in two by
    position (even tune, odd test), news dev by its own halves."""
    from bench.calibrate import news_index, xquad_index, xquad_quarter
    from rag.building import build_index  # as `rag index` does: the new generation's caches made at once
    from rag.chain import make_chain
    from rag.retrieve import SearchIndex

    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    keep = (0, 1) if half == "tune" else (2, 3)
    chain = make_chain(SearchIndex(xquad_index(root, settings, embedder), settings, embedder=embedder))
    out = {
        "xquad en->ar": span_rows(chain, [q for q in en if quarter[q.context_id] in keep]),
        "xquad ar->ar": span_rows(chain, [q for q in ar if quarter[q.context_id] in keep]),
    }
    arcd_contexts, arcd_qs = arcd(root, "test")
    write_bulk(WORK / "arcd-seeds", "arcd.jsonl", arcd_contexts)
    build_index(WORK / "arcd-seeds", WORK / "arcd-index", settings=settings, embedder=embedder, progress=True)
    arcd_chain = make_chain(SearchIndex(WORK / "arcd-index", settings, embedder=embedder))
    out["arcd-test"] = span_rows(arcd_chain, arcd_qs[half == "test" :: 2])
    news = make_chain(SearchIndex(news_index(root, settings, embedder), settings, embedder=embedder))
    out["news"] = news_rows(news, [i for i in news_dev(root) if i.half == half])
    return out


def main(argv: list[str] | None = None) -> int:
    from rag.embed import Embedder

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=None)
    parser.add_argument("--half", choices=("tune", "test"), default="test")
    parser.add_argument("--sweep", action="store_true", help="right and wrong short answers by lead (tuning halves)")
    parser.add_argument("--quotes", action="store_true", help="quote shape over margins and RAG_QUOTE_CHARS")
    parser.add_argument("--reader-cost", action="store_true", help="answer() time with and without the reader")
    parser.add_argument("--sweep-reader", action="store_true", help="right and wrong reader answers by gate (tuning)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    root = data_dir(args.shared)
    if args.sweep:
        sweep(root, settings)
        return 0
    if args.quotes:
        quote_grid(root, settings, args.half)
        return 0
    if args.reader_cost:
        reader_cost(root, settings)
        return 0
    if args.sweep_reader:
        sweep_reader(root, settings, Embedder(str(settings.model), settings.precision))
        return 0
    figures = short_figures(root, settings, Embedder(str(settings.model), settings.precision), args.half)
    print(json.dumps(figures, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
