"""Tuning for cross-lingual retrieval and refusal, on tuning halves only; writes rag/data/refusal.json.

Usage: python -m bench.calibrate [--shared ../shared] [--grid] [--no-write]

Tuning data (the test halves are only reported by `make bench`):
- XQuAD: articles in title order, quarters 0 and 1 (index mod 4); questions about quarters 2 and 3 are the test half.
- news dev: questions about the tuning half of its articles (`bench.data.news_dev`), unanswerable ones alternating.
With --grid it first grid-searches the cross-lingual BM25 weight, translations per word and evidence overlap weight.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np

from bench.cascade import fit_band, probabilities
from bench.data import data_dir, news_corpus, news_dev, write_bulk, write_records, xquad
from bench.leftout import leftout_news_index, paragraph_questions, xquad_paragraph_index
from rag.answering import EvidenceWeights, score_sentences
from rag.building import build_index  # as `rag index` does: the new generation's caches made at once
from rag.embed import Embedder
from rag.language import is_cross_lingual
from rag.refusal import (
    FEATURES,
    READER_FEATURES,
    RefusalModel,
    decision_features,
    reader_score,
    refusal_features,
)
from rag.retrieve import HybridRetriever, SearchIndex
from rag.settings import PROJECT_ROOT, Settings

WORK = PROJECT_ROOT / "bench" / "work"
PARTIAL_FLAGGED = 0.10  # share of right tuning answers a partial-evidence cut may flag
ANSWERED_FLOOR = {  # share of answerable tuning questions the threshold must answer, per group
    "xquad-en-0": 0.95,
    "xquad-en-1": 0.95,
    "xquad-ar-0": 0.95,
    "xquad-ar-1": 0.95,
    "news-en": 0.90,
    "news-ar": 0.90,
    "xpara-en-0": 0.95,
    "xpara-en-1": 0.95,
    "xpara-ar-0": 0.95,
    "xpara-ar-1": 0.95,
}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class CachedEmbedder:
    """The real embedder with query vectors cached, so a grid re-embeds nothing."""

    def __init__(self, embedder: Embedder) -> None:
        self._e = embedder
        self.embed_query = lru_cache(maxsize=None)(embedder.embed_query)

    def __getattr__(self, name):
        return getattr(self._e, name)


def xquad_quarter(titles: dict[str, str]) -> dict[str, int]:
    """Each context's quarter: its article's position in title order, mod 4 (0, 1 tune; 2, 3 test)."""
    order = {t: i for i, t in enumerate(sorted(set(titles.values())))}
    return {c: order[t] % 4 for c, t in titles.items()}


def xquad_split_index(root: Path, settings: Settings, embedder, swapped: bool = False) -> tuple[Path, set[str]]:
    """An index of half the XQuAD articles (even positions; odd when swapped): built once, reused."""
    contexts, _, _, titles = xquad(root)
    articles = sorted(set(titles.values()))
    kept = set(articles[1::2] if swapped else articles[::2])
    half = {c: t for c, t in contexts.items() if titles[c] in kept}
    name = "xquad-other-half" if swapped else "xquad-half"
    seeds = WORK / f"{name}-seeds"
    write_bulk(seeds, f"{name.replace('-', '_')}.jsonl", half)
    build_index(seeds, WORK / f"{name}-index", settings=settings, embedder=embedder, progress=True)
    return WORK / f"{name}-index", set(half)


def news_index(root: Path, settings: Settings, embedder) -> Path:
    """The news benchmark corpus: the dev set's articles plus 950 other SaudiNewsNet articles (fixed seed)."""
    items = news_dev(root)
    seeds = WORK / "news-seeds"
    seeds.mkdir(parents=True, exist_ok=True)
    path = seeds / "news.jsonl"
    if not path.is_file():
        write_records(path, news_corpus(root, items))
    build_index(seeds, WORK / "news-index", settings=settings, embedder=embedder, progress=True)
    return WORK / "news-index"


def xquad_index(root: Path, settings: Settings, embedder) -> Path:
    """Every XQuAD paragraph as one corpus: built (incrementally), then its folder."""
    contexts, *_ = xquad(root)
    write_bulk(WORK / "xquad-seeds", "xquad.jsonl", contexts)
    build_index(WORK / "xquad-seeds", WORK / "xquad-index", settings=settings, embedder=embedder, progress=True)
    return WORK / "xquad-index"


def evidence_found(quotes: list[str], evidence: list[str]) -> bool:
    return any(e in q for q in quotes for e in evidence)


def tuning_sets(root: Path):
    """XQuAD (question, lang) pairs and news dev items of the tuning halves, and each XQuAD context's quarter."""
    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    xq = [(q, lang) for lang, qs in (("en", en), ("ar", ar)) for q in qs if quarter[q.context_id] in (0, 1)]
    news = [i for i in news_dev(root) if i.half == "tune"]
    return xq, news, quarter


def grid(root: Path, settings: Settings, embedder) -> None:
    xq, news, _ = tuning_sets(root)
    xq_en = [q for q, lang in xq if lang == "en"]
    news_en = [i for i in news if i.kind == "single" and i.lang == "en"]
    for weight in (0.0, 0.05, 0.1, 0.15, 0.2, 0.3):
        for n_tr in (2, 4, 6, 10):
            s = dataclasses.replace(settings, lexical_weight_cross=weight, max_translations=n_tr)
            xi = SearchIndex(WORK / "xquad-index", s, embedder=embedder)
            r1 = np.mean([xi.search(q.text, 1)[0].doc_id.split("#")[-1] == q.context_id for q in xq_en])
            ni = SearchIndex(WORK / "news-index", s, embedder=embedder)
            top3 = np.mean(
                [evidence_found([h.text for h in ni.search(i.questions[0], 3)], i.evidence[0]) for i in news_en]
            )
            doc1 = np.mean([ni.search(i.questions[0], 1)[0].doc_id.endswith(i.doc_id) for i in news_en])
            log(
                f"w={weight} tr={n_tr}: XQuAD-tune en R@1 {r1:.3f}  news-tune en evidence@3 {top3:.3f} doc@1 {doc1:.3f}"
            )
            if weight == 0.0:
                break


def grid_evidence(root: Path, settings: Settings, embedder) -> None:
    """Evidence in the quoted sentences of English questions, over the overlap weight, cue bonus and quote margin."""
    import itertools

    from rag.answering import ExtractiveAnswerer

    xq, news, _ = tuning_sets(root)
    xi = SearchIndex(WORK / "xquad-index", settings, embedder=embedder)
    ni = SearchIndex(WORK / "news-index", settings, embedder=embedder)
    sets = [
        (xi, [(q.text, [q.answer]) for q, lang in xq if lang == "en"]),
        (ni, [(i.questions[0], i.evidence[0]) for i in news if i.kind in ("single", "followup") and i.lang == "en"]),
    ]
    retrieved = [[(q, ev, HybridRetriever(index=idx).invoke(q)) for q, ev in qs] for idx, qs in sets]
    for ov, cue, margin in itertools.product((0.1, 0.15, 0.2), (0.02,), (0.06, 0.1, 0.2, 0.3)):
        w = EvidenceWeights(overlap_cross=ov, answer_type=cue)
        res = []
        for (idx, _), data in zip(sets, retrieved, strict=True):
            answerer = ExtractiveAnswerer(idx.article_text, 3, margin=margin, margin_cross=margin)
            hits = []
            for q, ev, docs in data:
                a = answerer(q, docs, score_sentences(idx, q, docs, w))
                hits.append(any(e in c.quote for c in a.citations for e in ev))
            res.append(np.mean(hits))
        log(
            f"overlap_cross={ov} answer_type={cue} margin={margin}: "
            f"XQuAD-tune en {res[0]:.3f} news-tune en {res[1]:.3f}"
        )


def feature_rows(index: SearchIndex, questions: list[str]) -> np.ndarray:
    """READER_FEATURES of each question where the index has a reader (`make reader`), else FEATURES."""
    retriever = HybridRetriever(index=index)
    reader = index.reader
    names = READER_FEATURES if reader is not None else FEATURES
    rows = []
    for q in questions:
        docs = retriever.invoke(q)
        evidence = score_sentences(index, q, docs)
        f = refusal_features(index, q, docs, evidence)
        if reader is not None:
            f["reader"] = reader_score(reader, q, evidence)
        rows.append([f[name] for name in names])
    return np.array(rows, dtype=np.float64).reshape(len(rows), len(names))


def decisions(index: SearchIndex, model: RefusalModel, questions: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """As `rag.chain` decides: each question's probability less the threshold of the model that decided it (answered
    at >= 0), and whether that was the reader's model (`with_reader`, in its band)."""
    retriever = HybridRetriever(index=index)
    margins, deferred = [], []
    for q in questions:
        docs = retriever.invoke(q)
        decides, features = decision_features(index, model, q, docs, score_sentences(index, q, docs))
        margins.append(decides.probability(features) - decides.threshold_for(is_cross_lingual(q)))
        deferred.append(decides is not model)
    return np.array(margins), np.array(deferred, dtype=bool)


def fit_logistic(x: np.ndarray, y: np.ndarray, w: np.ndarray, l2: float = 10.0):
    """Weighted logistic regression on standardised features, L2 on the weights (10 beat 1, 30 and 100 on the
    tuning groups: python -m bench.calibrate --cached with other values)."""
    from scipy.optimize import minimize

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale

    def loss(theta):
        logits = z @ theta[1:] + theta[0]
        p = 1 / (1 + np.exp(-logits))
        nll = -np.sum(w * (y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))) / w.sum()
        grad_logit = w * (p - y) / w.sum()
        grad = np.concatenate([[grad_logit.sum()], z.T @ grad_logit])
        return nll + l2 * np.sum(theta[1:] ** 2) / 2 / len(y), grad + np.concatenate([[0], l2 * theta[1:] / len(y)])

    theta = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B").x
    return mean, scale, theta


def collect_groups(root: Path, settings: Settings, embedder) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Features, labels (1 = the corpus answers it) and "seen by the reader" (questions `bench.train_reader` trained
    on: XQuAD's first quarter) of every tuning question, by group."""
    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    groups = {}  # name -> (features, labels, seen)
    for swapped in (False, True):
        index_dir, indexed = xquad_split_index(root, settings, embedder, swapped)
        index = SearchIndex(index_dir, settings, embedder=embedder)
        for lang, qs in (("en", en), ("ar", ar)):
            tune = [q for q in qs if quarter[q.context_id] in (0, 1)]
            log(f"features: XQuAD {lang} {'swapped' if swapped else 'first'} split ({len(tune)} questions)")
            x = feature_rows(index, [q.text for q in tune])
            y = np.array([q.context_id in indexed for q in tune], dtype=np.float64)
            groups[f"xquad-{lang}-{int(swapped)}"] = (x, y, np.array([quarter[q.context_id] == 0 for q in tune]))
    for swapped in (False, True):  # half the paragraphs of every article: same topic, other facts
        index_dir, kept = xquad_paragraph_index(root, settings, embedder, swapped)
        index = SearchIndex(index_dir, settings, embedder=embedder)
        for lang, qs in (("en", en), ("ar", ar)):
            tune = [q for q in qs if quarter[q.context_id] in (0, 1)]
            log(f"features: XQuAD {lang} paragraph split {int(swapped)} ({len(tune)} questions)")
            pairs = paragraph_questions(tune, kept)
            x = feature_rows(index, [q for q, _ in pairs])
            seen = np.array([quarter[q.context_id] == 0 for q in tune])
            groups[f"xpara-{lang}-{int(swapped)}"] = (x, np.array([a for _, a in pairs], dtype=np.float64), seen)
    index = SearchIndex(WORK / "news-index", settings, embedder=embedder)
    every = news_dev(root)
    leftout = SearchIndex(
        leftout_news_index(root, every, settings, embedder, WORK / "news-index"), settings, embedder=embedder
    )
    news = [i for i in every if i.half == "tune"]
    for lang in ("en", "ar"):
        items = [i for i in news if i.lang == lang and i.kind in ("single", "unanswerable")]
        items += [i for i in news if i.lang == lang and i.kind == "followup"]  # their first question stands alone
        log(f"features: news {lang} ({len(items)} questions)")
        x = feature_rows(index, [i.questions[0] for i in items])
        y = np.array([i.kind != "unanswerable" for i in items], dtype=np.float64)
        groups[f"news-{lang}"] = (x, y, np.zeros(len(y), dtype=bool))
        answerable = [i.questions[0] for i in items if i.kind != "unanswerable"]
        log(f"features: news {lang}, answers left out ({len(answerable)} questions)")
        x, none = feature_rows(leftout, answerable), np.zeros(len(answerable), dtype=bool)
        groups[f"news-leftout-{lang}"] = (x, none.astype(np.float64), none)
    width = next(iter(groups.values()))[0].shape[1]
    cache = {
        "features": list(READER_FEATURES if width > len(FEATURES) else FEATURES),
        "groups": {k: [x.tolist(), y.tolist(), seen.tolist()] for k, (x, y, seen) in groups.items()},
    }
    (WORK / "refusal-features.json").write_text(json.dumps(cache))
    return groups


def calibrate(groups: dict[str, tuple], settings: Settings, write: bool) -> RefusalModel:
    """Fit the refusal model on the tuning groups and choose its thresholds; with the reader's feature in the rows,
    fit `with_reader` beside it on the questions the reader was not trained on, and the band of the first model's
    probability where it decides (`bench.cascade`). Written unless told not to."""
    model = fit_model({k: (x[:, : len(FEATURES)], y) for k, (x, y, _) in groups.items()}, FEATURES)
    if next(iter(groups.values()))[0].shape[1] == len(READER_FEATURES):
        log("with the reader's feature, on the questions it did not train on:")
        unseen = {k: (x[~seen], y[~seen]) for k, (x, y, seen) in groups.items()}
        model.with_reader = fit_model(unseen, READER_FEATURES)
        fit_band(unseen, model, model.with_reader, ANSWERED_FLOOR)
    if write:
        settings.refusal_model.write_text(model.to_json() + "\n", encoding="utf-8")
        log(f"wrote {settings.refusal_model}")
    return model


def fit_model(groups: dict[str, tuple[np.ndarray, np.ndarray]], features: tuple[str, ...]) -> RefusalModel:
    """A refusal model over `features` (the groups' columns) and its two thresholds."""
    # Every group weighs the same in the fit, and within a group both classes weigh the same (news groups weighed
    # 2, 4 and 8 times as much fitted worse on the tuning groups).
    xs, ys, ws = [], [], []
    for x, y in groups.values():
        for label in (0.0, 1.0):
            n = max(1, int((y == label).sum()))
            ws.append(np.where(y == label, 1.0 / n, 0.0))
        xs.append(x)
        ys.append(y)
    x, y = np.vstack(xs), np.concatenate(ys)
    w = np.concatenate([a + b for a, b in zip(ws[::2], ws[1::2], strict=True)])
    mean, scale, theta = fit_logistic(x, y, w)
    model = RefusalModel(features, mean.tolist(), scale.tolist(), theta[1:].tolist(), float(theta[0]), 0.5, 0.5)

    def rates(t: float) -> dict[str, tuple[float, float]]:
        out = {}
        for name, (gx, gy) in groups.items():
            p = probabilities(model, gx)
            refused = float((p[gy == 0] < t).mean()) if (gy == 0).any() else 1.0
            out[name] = (refused, float((p[gy == 1] >= t).mean()) if (gy == 1).any() else 1.0)
        return out

    # One threshold per script: refuse as much as possible while each of the script's groups answers its floor of
    # answerable tuning questions (XQuAD: 0.95, as the targets; news: the 90%).
    for script in ("ar", "en"):
        mine = [name for name in groups if f"-{script}" in name]
        best, best_refused = 0.0, -1.0
        for t in np.arange(0.02, 0.98, 0.01):
            r = rates(float(t))
            if all(r[name][1] >= ANSWERED_FLOOR[name] for name in mine if name in ANSWERED_FLOOR):
                refused = float(np.mean([r[name][0] for name in mine]))
                if refused > best_refused:
                    best, best_refused = float(t), refused
        if best_refused < 0:
            raise SystemExit(f"no threshold answers every {script} group's floor: the features or floors need a look")
        if script == "ar":
            model.threshold = round(best, 2)
        else:
            model.threshold_cross = round(best, 2)
    for t in (0.1, 0.2, 0.3, 0.4, 0.5, model.threshold, model.threshold_cross):
        log(f"threshold {t:.2f}: " + ", ".join(f"{k} {a:.2f}/{b:.2f}" for k, (a, b) in rates(t).items()))
    log("weights: " + ", ".join(f"{n} {c:+.2f}" for n, c in zip(features, model.coef, strict=True)))
    floors = ", ".join(f"{k} {v:.2f}" for k, v in ANSWERED_FLOOR.items())
    model.note = (
        "fitted by `python -m bench.calibrate` on the tuning halves of XQuAD (both half-indexed splits) and the news "
        f"dev set; thresholds {model.threshold} (Arabic) and {model.threshold_cross} (Latin script): most refused "
        f"while answering at least: {floors}"
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", default=None)
    parser.add_argument("--grid", action="store_true", help="grid-search retrieval and evidence weights first")
    parser.add_argument("--followups", action="store_true", help="only tune how follow-ups take their context")
    parser.add_argument("--cached", action="store_true", help="reuse the features of the last run (same features)")
    parser.add_argument("--no-write", action="store_true", help="report the fit, leave rag/data/refusal.json alone")
    parser.add_argument("--support", action="store_true", help="only calibrate the LLM answer verification")
    args = parser.parse_args(argv)
    root = data_dir(args.shared)
    settings = Settings.from_env()
    if args.support:
        calibrate_support(root, settings)
        return 0
    embedder = CachedEmbedder(Embedder(str(settings.model), settings.precision))
    news_index(root, settings, embedder)
    if args.grid:
        grid(root, settings, embedder)
        grid_evidence(root, settings, embedder)
    if args.followups:
        tune_followups(root, settings, embedder)
        return 0
    cached = WORK / "refusal-features.json"
    data = json.loads(cached.read_text()) if args.cached and cached.is_file() else {}
    if data.get("features") in (list(FEATURES), list(READER_FEATURES)):
        rows = data["groups"]
        groups = {k: (np.array(x), np.array(y), np.array(seen, dtype=bool)) for k, (x, y, seen) in rows.items()}
    else:
        groups = collect_groups(root, settings, embedder)
    model = calibrate(groups, settings, write=not args.no_write)
    calibrate_partial(root, settings, embedder, model, write=not args.no_write)
    return 0


def calibrate_partial(root: Path, settings: Settings, embedder, model: RefusalModel, write: bool) -> None:
    """The share of the question the quoted passages may miss before an answer is flagged partial, per script: the
    lowest cut that flags at most PARTIAL_FLAGGED of the tuning answers that quote their evidence (news tuning half
    and XQuAD tuning quarters, paragraph split), measured with the refusal model just fitted."""
    from rag.chain import make_chain
    from rag.refusal import cited_gap

    gaps: dict[str, dict[str, list[float]]] = {s: {"right": [], "leftout": []} for s in ("ar", "en")}
    news = [i for i in news_dev(root) if i.half == "tune" and i.kind in ("single", "followup")]
    full = SearchIndex(WORK / "news-index", settings, embedder=embedder)
    leftout = SearchIndex(WORK / "leftout-index", settings, embedder=embedder)
    _, en, ar, titles = xquad(root)
    quarter = xquad_quarter(titles)
    para_dir, kept = xquad_paragraph_index(root, settings, embedder, False)
    para = SearchIndex(para_dir, settings, embedder=embedder)
    asked = [(full, i.questions[0], i.lang, i.evidence[0], "right") for i in news]
    asked += [(leftout, i.questions[0], i.lang, [], "leftout") for i in news]
    for lang, qs in (("en", en), ("ar", ar)):
        for q in qs:
            if quarter[q.context_id] in (0, 1):
                kind = "right" if q.context_id in kept else "leftout"
                asked.append((para, q.text, lang, [q.answer] if kind == "right" else [], kind))
    chains = {id(ix): make_chain(ix, refusal=model) for ix in (full, leftout, para)}
    for ix, q, lang, evidence, kind in asked:
        a = chains[id(ix)].invoke(q)
        if not a.found or (kind == "right" and not any(e in c.quote for c in a.citations for e in evidence)):
            continue
        gaps[lang][kind].append(cited_gap(ix, q, a.citations)[0])
    for lang, g in gaps.items():
        right = np.array(g["right"])
        cut = float(np.quantile(right, 1 - PARTIAL_FLAGGED)) + 0.01 if len(right) else 1.1
        flagged = float((np.array(g["leftout"]) >= cut).mean()) if g["leftout"] else 0.0
        log(
            f"partial cut {lang}: {cut:.2f} flags {float((right >= cut).mean()):.2f} of {len(right)} right answers "
            f"and {flagged:.2f} of {len(g['leftout'])} answered left-out questions"
        )
        for m in (model, model.with_reader) if model.with_reader else (model,):
            if lang == "ar":
                m.partial_cut = round(cut, 2)
            else:
                m.partial_cut_cross = round(cut, 2)
    if write:
        settings.refusal_model.write_text(model.to_json() + "\n", encoding="utf-8")
        log(f"wrote {settings.refusal_model}")


def paragraph_passage(index: SearchIndex, doc_id: str):
    """A whole indexed XQuAD paragraph as one LLM passage: its sentences and their span vectors."""
    from rag.llm import Passage

    text = index.article_text(doc_id)
    spans, vectors = {}, {}
    for cid in index.doc_chunk_ids(index.doc_ids.index(doc_id)).tolist():
        ref = index.chunk(cid)
        for span, vec in zip(
            index.sentence_spans(doc_id, ref.first_sentence, ref.last_sentence), index.span_vectors(cid), strict=False
        ):
            spans.setdefault(tuple(span), len(spans))
            vectors.setdefault(tuple(span), vec)
    order = sorted(spans)
    return Passage(
        chunk_id=-1,  # the paragraph's chunks as one passage
        doc_id=doc_id,
        title="",
        source="",
        start=0,
        end=len(text),
        text=text,
        n=1,
        sentences=order,
        sentence_texts=[text[a:b] for a, b in order],
        vectors=np.stack([vectors[k] for k in order]),
    )


def calibrate_support(root: Path, settings: Settings) -> None:
    """Choose how an LLM's sentence is verified (rag.llm.support_scores) on XQuAD's tuning quarters; report the test
    quarters. A claim is an English question followed by its answer; it is supported by its own paragraph (the
    passage holding the answer) and not by another paragraph of the same article (on topic, other facts). The
    threshold keeps 90% of the tuning claims; the overlap weight maximises the tuning AUC."""
    import rag.llm as llm

    contexts, en, _, titles = xquad(root)
    write_bulk(WORK / "xquad-seeds", "xquad.jsonl", contexts)
    index = SearchIndex(WORK / "xquad-index", settings)
    quarter = xquad_quarter(titles)
    rng = np.random.default_rng(0)
    by_title: dict[str, list[str]] = {}
    for cid, title in titles.items():
        by_title.setdefault(title, []).append(cid)
    passages: dict[str, object] = {}

    def passage(cid: str):
        if cid not in passages:
            passages[cid] = paragraph_passage(index, f"xquad.jsonl#{cid}")
        return passages[cid]

    with open(root / "bench" / "xquad_xling.jsonl", encoding="utf-8") as fh:
        answer_en = {r["id"]: r["answer_en"] for r in map(json.loads, fh)}
    rows = []
    for q in en:
        others = [c for c in by_title[titles[q.context_id]] if c != q.context_id]
        if others:
            rows.append((q, f"{q.text} {answer_en[q.qid]}", str(rng.choice(others))))
    log(f"support: {len(rows)} claims")
    vectors = index.queries.embed_queries([claim for _, claim, _ in rows])
    results = {}
    for weight in (0.0, 0.05, 0.1, 0.15, 0.2):
        llm.SUPPORT_OVERLAP = weight
        pos = {0: [], 1: []}
        neg = {0: [], 1: []}
        for (q, claim, other), vec in zip(rows, vectors, strict=True):
            half = 0 if quarter[q.context_id] in (0, 1) else 1
            pos[half].append(float(llm.support_scores(index, claim, vec, passage(q.context_id)).max()))
            neg[half].append(float(llm.support_scores(index, claim, vec, passage(other)).max()))
        p, n = np.array(pos[0]), np.array(neg[0])
        auc = float((p[:, None] > n[None, :]).mean())
        threshold = float(np.quantile(p, 0.10))
        tp, tn = np.array(pos[1]), np.array(neg[1])
        results[weight] = (auc, threshold, float((tp >= threshold).mean()), float((tn < threshold).mean()))
        log(
            f"overlap weight {weight:.2f}: tuning AUC {auc:.3f}, threshold {threshold:.3f}; test: supported kept "
            f"{results[weight][2]:.3f}, other-paragraph claims dropped {results[weight][3]:.3f}"
        )
    best = max(results, key=lambda w: results[w][0])
    print(json.dumps({"SUPPORT_OVERLAP": best, "RAG_LLM_SUPPORT": round(results[best][1], 3)}))


def unrelated_history(items, i: int) -> list[dict]:
    """A conversation about another article: the first question of a follow-up pair not about item i's article."""
    pairs = [p for p in items if p.kind == "followup" and p.doc_id != i.doc_id]
    other = pairs[int(hashlib.sha256(i.qid.encode()).hexdigest(), 16) % len(pairs)] if pairs else None
    if other is None:
        return []
    return [{"role": "user", "content": other.questions[0]}, {"role": "assistant", "content": "…"}]


def followup_figures(chain, items, head_start: float | None = None) -> dict[str, float]:
    """Evidence in quote of follow-up second questions alone and with history, and of single questions alone and
    after an unrelated history (items: news dev items of one half)."""
    from rag.conversation import answer_in_context, read_history

    def ask(q: str, history: list[dict]):
        kwargs = {} if head_start is None else {"head_start": head_start}
        return answer_in_context(chain.invoke, q, read_history(history), **kwargs)

    def hit(a, evidence) -> bool:
        return any(e in c.quote for c in a.citations for e in evidence)

    pairs = [i for i in items if i.kind == "followup"]
    singles = [i for i in items if i.kind == "single"]
    out = {}
    out["followup alone"] = float(np.mean([hit(ask(p.questions[1], []), p.evidence[1]) for p in pairs]))
    with_history = []
    for p in pairs:
        first = ask(p.questions[0], [])
        history = [{"role": "user", "content": p.questions[0]}, {"role": "assistant", "content": first.text}]
        with_history.append(hit(ask(p.questions[1], history), p.evidence[1]))
    out["followup with history"] = float(np.mean(with_history))
    out["single alone"] = float(np.mean([hit(ask(i.questions[0], []), i.evidence[0]) for i in singles]))
    out["single after unrelated history"] = float(
        np.mean([hit(ask(i.questions[0], unrelated_history(items, i)), i.evidence[0]) for i in singles])
    )
    out["n pairs"], out["n singles"] = len(pairs), len(singles)
    return out


def tune_followups(root: Path, settings: Settings, embedder) -> None:
    from rag.chain import make_chain

    chain = make_chain(SearchIndex(WORK / "news-index", settings, embedder=embedder))
    items = [i for i in news_dev(root) if i.half == "tune"]
    for head_start in (0.0, 0.15, 0.3, 0.5, 1.0):
        f = followup_figures(chain, items, head_start)
        log(f"head_start={head_start}: " + ", ".join(f"{k} {v:.3f}" for k, v in f.items() if not k.startswith("n ")))


if __name__ == "__main__":
    sys.exit(main())
