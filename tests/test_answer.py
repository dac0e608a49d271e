"""answer() and `rag ask` on a real index of seeds/: cited answers, refusals, bad questions."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ALBANIA_REASON, ANSWER_KEYS, ROOT

from rag import IndexMissing, answer, article_text


def _check_citations(a, index_dir):
    numbers = [c.n for c in a.citations]
    assert numbers == list(range(1, len(numbers) + 1))
    for c in a.citations:
        assert article_text(c.doc_id, index_dir)[c.start : c.end] == c.quote
        assert f"[{c.n}]" in a.text
        assert c.quote in c.passage
    markers = {int(m) for m in __import__("re").findall(r"\[(\d+)\]", a.text)}
    assert markers == set(numbers)  # none dangling


@pytest.mark.parametrize("question", ["why did Albania cut ties?", "لماذا قطعت ألبانيا علاقاتها مع إيران؟"])
def test_albania_question_is_answered_with_the_reason(seed_index, question):
    a = answer(question, index_dir=seed_index)
    assert a.found
    assert any(ALBANIA_REASON in c.quote for c in a.citations), a.text
    _check_citations(a, seed_index)
    c = a.citations[0]
    assert c.title.startswith("إيران وألبانيا") and c.source.endswith(".txt") and c.passage


@pytest.mark.parametrize(
    "question",
    ["Who won the 2018 FIFA World Cup final?", "How do I bake sourdough bread?", "من فاز بكأس العالم لكرة القدم 2018؟"],
)
def test_unrelated_question_is_refused(seed_index, question):
    a = answer(question, index_dir=seed_index)
    assert not a.found and a.citations == []
    assert "do not cover" in a.text or "لا تتناول" in a.text


@pytest.mark.parametrize("question", ["", "   ", "\n\t"])
def test_empty_question_raises(seed_index, question):
    with pytest.raises(ValueError, match="question is empty"):
        answer(question, index_dir=seed_index)


def test_very_long_question_is_truncated_not_an_error(seed_index):
    a = answer("why did Albania cut ties? " * 4000, index_dir=seed_index)
    assert len(a.question) <= 2000
    _check_citations(a, seed_index)


def test_missing_index_says_to_run_make_index(tmp_path):
    with pytest.raises(IndexMissing, match="make index"):
        answer("why did Albania cut ties?", index_dir=tmp_path / "nowhere")


def _rag(*args: str, env_index=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, cwd=ROOT, timeout=300
    )


def test_cli_ask_json(seed_index):
    out = _rag("ask", "why did Albania cut ties?", "--json", "--index", str(seed_index))
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert set(data) == {*ANSWER_KEYS, "corpus_dates"} and data["composer"] == "extractive"
    assert data["corpus_dates"] == {"first": "", "last": "", "undated": 1}  # the seed has no date
    assert data["found"] is True and 0 < data["confidence"] <= 1
    assert set(data["citations"][0]) == {
        *("n", "doc_id", "title", "source", "quote", "start", "end", "passage", "score"),
        *("date", "outlet", "url", "also_in", "dates"),
    }


def test_cli_human_output_lists_citations(seed_index):
    out = _rag("ask", "لماذا قطعت ألبانيا علاقاتها مع إيران؟", "--index", str(seed_index))
    assert out.returncode == 0, out.stderr
    assert "[1]" in out.stdout and "إيران وألبانيا" in out.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ask", " "], "question is empty"),
        (["ask", "hi", "--index", "/nonexistent/index"], "make index"),
        (["index", "--seeds", "/nonexistent/seeds", "--index", "/tmp/unused-index"], "no seeds folder"),
    ],
)
def test_cli_errors_are_one_line(args, message):
    out = _rag(*args)
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and message in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("question", ["🙂🙂🙂", "?!... ؟", "\u200b\u200f\u2066"])
def test_question_without_words_is_refused_with_a_clear_line(seed_index, question):
    with pytest.raises(ValueError, match=r"ask a question in words|question is empty"):
        answer(question, index_dir=seed_index)


def test_control_and_format_characters_are_stripped_before_retrieval(seed_index):
    a = answer("\u200bwhy did\u0007 Albania\u200f cut ties?\u2066", index_dir=seed_index)
    assert a.found and a.question == "why did Albania cut ties?"
    assert any(ALBANIA_REASON in c.quote for c in a.citations)


@pytest.mark.parametrize("k", [0, -1, 101])
def test_k_out_of_range_is_one_clear_error(seed_index, k):
    with pytest.raises(ValueError, match="k must be a whole number from 1 to 100"):
        answer("why did Albania cut ties?", k=k, index_dir=seed_index)
    out = _rag("ask", "why did Albania cut ties?", "-k", str(k), "--index", str(seed_index))
    assert out.returncode == 2 and out.stderr.startswith("error: k must be") and "Traceback" not in out.stderr


def test_answer_and_get_index_follow_the_settings_they_are_given(seed_index, settings):
    from dataclasses import replace

    from rag import get_index

    question = "why did Albania cut ties?"
    wide = answer(question, index_dir=seed_index, settings=settings)
    narrow = answer(question, index_dir=seed_index, settings=replace(settings, max_sentences=1))
    assert len(wide.citations) > 1 and len(narrow.citations) == 1  # not the index cached for the other settings
    assert get_index(seed_index, settings) is get_index(seed_index, settings)
    assert get_index(seed_index, replace(settings, top_k=2)).settings.top_k == 2


def test_one_language_rule_for_mixed_questions():
    from rag.answering import NOT_FOUND_AR, NOT_FOUND_EN, not_found_text
    from rag.language import is_cross_lingual
    from rag.llm import answer_language

    for question, english in (
        ("What did Mandiant say about ألبانيا?", True),
        ("ماذا قالت Mandiant عن ألبانيا؟", False),
    ):
        assert is_cross_lingual(question) == english
        assert answer_language(question) == ("English" if english else "Arabic")
        assert not_found_text(question) == (NOT_FOUND_EN if english else NOT_FOUND_AR)
