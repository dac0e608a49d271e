"""The benchmark report renders a saved run (results read back from JSON) with each target's verdict."""

import json

from bench.report import render, verdict


def saved_run() -> dict:
    results = {
        "meta": {"commit": "abc1234", "quick": True},
        "retrieval": {
            "XQuAD ar->ar": {
                "ours": {"n": 10, "R@1": 0.9, "R@5": 1.0, "MRR@10": 0.95},
                "naive": {"n": 10, "R@1": 0.5, "R@5": 0.8, "MRR@10": 0.6},
            }
        },
        "answers": {
            "XQuAD ar->ar": {"n": 10, "evidence hit": 0.8, "first-citation hit": 0.7, "citation validity": 1.0,
                             "answered": 0.9}
        },
        "refusal": {
            "en": {"threshold": "0.12 (Arabic), 0.1 (Latin)",
                   "refused (unanswerable)": 0.6, "answered (answerable)": 0.96,
                   "n_unanswerable": 5, "n_answerable": 5, "sweep": {-0.1: (0.55, 0.97), 0.05: (0.76, 0.92)}}
        },
        "speed": {"rag ask cold start (s)": 3.5, "answer() p50 (ms)": 40.0, "bf16 vs fp32 min cosine": 0.999991},
        "seconds": 90.0,
    }  # fmt: skip
    return json.loads(json.dumps(results))  # as bench.run renders it, and as results.json holds it


def test_a_saved_run_renders_with_verdicts():
    text = render(saved_run())
    assert text.startswith("# Benchmark results (quick run)")
    assert "commit abc1234" in text
    assert "- en: -0.10: 0.55/0.97, +0.05: 0.76/0.92" in text  # sweep offsets came back from JSON as strings
    assert "Thresholds: 0.12 (Arabic), 0.1 (Latin)." in text
    assert "| XQuAD ar->ar | 10 | 0.900 | 1.000 | 0.950 | 0.500 | 0.800 | 0.600 | R@1 >= 0.93 MISSED |" in text
    assert "| rag ask cold start (s) | 3.500 | <= 3 (MISSED) |" in text
    assert "| answer() p50 (ms) | 40.000 | <= 150 (met) |" in text
    assert "| bf16 vs fp32 min cosine | 0.99999 | >= 0.9999 (met) |" in text
    assert "Skipped: not run." in text  # the optional LLM section says why it is empty


def test_verdict_reads_only_simple_targets():
    assert verdict(0.8, ">= 0.75") == "met"
    assert verdict(500, "<= 450") == "MISSED"
    assert verdict(0.8, ">= 0.75 refused, >= 0.90 answered") == ""
    assert verdict("n/a", ">= 0.75") == ""
