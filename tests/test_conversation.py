"""Follow-up questions read in the context of the conversation: answer(history=...), bad history, `rag chat`."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

from rag import answer, article_text
from rag.conversation import leans_on_context

ALBANIA = "why did Albania cut ties?"
FOLLOW_UP = "how long were its diplomats given to leave?"


def _history(*turns: tuple[str, str]) -> list[dict]:
    return [{"role": role, "content": text} for role, text in turns]


def test_follow_up_is_answered_with_its_history(news_index):
    first = answer(ALBANIA, index_dir=news_index)
    history = _history(("user", ALBANIA), ("assistant", first.text))
    a = answer(FOLLOW_UP, index_dir=news_index, history=history)
    assert a.found and any("24 ساعة" in c.quote for c in a.citations), a.text
    assert a.question == FOLLOW_UP
    assert FOLLOW_UP in a.searched_question and "Albania" in a.searched_question  # how it was read
    for c in a.citations:
        assert article_text(c.doc_id, news_index)[c.start : c.end] == c.quote


def test_self_contained_question_is_not_pulled_to_the_previous_topic(news_index):
    history = _history(("user", ALBANIA), ("assistant", "…"))
    a = answer("كم بلغت القدرة الإنتاجية لمشروع الطاقة الشمسية في تبوك؟", index_dir=news_index, history=history)
    assert a.found and any("300 ميغاواط" in c.quote for c in a.citations), a.text
    assert all("تبوك" in c.title for c in a.citations)
    assert a.searched_question == a.question


def test_a_question_the_corpus_cannot_answer_is_not_answered_through_the_previous_one(seed_index):
    # Aleppo is in no article; the previous question's words must not make the Albania article look like an answer
    history = _history(("user", "لماذا قطعت ألبانيا علاقاتها مع إيران؟"), ("assistant", "…"))
    a = answer("How many people died in Aleppo?", index_dir=seed_index, history=history)
    assert not a.found and not a.citations and "Aleppo" in a.missing, a.text
    assert a.searched_question == a.question


def test_a_question_in_the_other_language_starts_afresh(seed_index):
    history = _history(("user", ALBANIA), ("assistant", "…"), ("user", FOLLOW_UP), ("assistant", "…"))
    a = answer("لماذا قطعت ألبانيا علاقاتها مع إيران؟", index_dir=seed_index, history=history)
    assert a.found and a.searched_question == a.question  # not "... (how long were its diplomats given to leave?)"
    follow = answer("وكم ساعة أمهلت الدبلوماسيين؟", index_dir=seed_index, history=history)  # a leading "and"
    assert "Albania" in follow.searched_question


def test_question_without_history_is_searched_as_typed(news_index):
    a = answer(ALBANIA, index_dir=news_index, history=[])
    assert a.searched_question == ALBANIA


@pytest.mark.parametrize(
    "history",
    [
        "why did Albania cut ties?",
        [{"role": "user"}],
        [{"role": "system", "content": "x"}],
        [{"role": "user", "content": 3}],
        [["user", "hello"]],
    ],
)
def test_malformed_history_is_one_clear_error(news_index, history):
    with pytest.raises(ValueError, match=r"history must be a list of \{'role'") as err:
        answer(FOLLOW_UP, index_dir=news_index, history=history)
    assert "\n" not in str(err.value)


def test_long_history_is_bounded(news_index):
    history = _history(*[("user", "x" * 10_000), ("assistant", "y")] * 50, ("user", ALBANIA), ("assistant", "…"))
    a = answer(FOLLOW_UP, index_dir=news_index, history=history)
    assert a.found and len(a.searched_question) <= 2000


def test_rag_chat_keeps_the_conversation(news_index):
    script = f"{ALBANIA}\n{FOLLOW_UP}\n/new\n{FOLLOW_UP}\n/quit\n"
    out = subprocess.run(
        [sys.executable, "-m", "rag.cli", "chat", "--index", str(news_index)],
        input=script,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    turns = out.stdout.split("you> ")
    assert len(turns) == 6  # banner, two answers, /new, one answer, and the prompt /quit answered
    assert "قطع العلاقات الدبلوماسية" in turns[1] and "[1]" in turns[1]
    assert "24 ساعة" in turns[2] and "(searched as:" in turns[2]
    assert "(new conversation)" in turns[3]
    assert "(searched as:" not in turns[4]  # after /new the follow-up stands alone


def test_rag_chat_ends_on_ctrl_d(news_index):
    out = subprocess.run(
        [sys.executable, "-m", "rag.cli", "chat", "--index", str(news_index)],
        input=f"{ALBANIA}\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0 and "[1]" in out.stdout


@pytest.mark.parametrize(
    ("question", "leans"),
    [
        ("من هو رئيس وزراء ألبانيا؟", False),  # "who is": a question word's pronoun points back at nothing
        ("ما هي عاصمة أستراليا؟", False),
        ("ومن هو؟", True),
        ("ماذا قال هو؟", True),
        ("كم عدد القتلى في هذه الحادثة؟", True),
        ("And how many were wounded?", True),
        ("Who is the prime minister of Albania?", False),
        ("And which clause of those rules drew the most debate in the ministry's workshops?", True),
        # a question that names its own subject: its pronoun points inside it, not at the conversation
        (
            "Why did Gill Pharaoh, a 75-year-old retired British nurse with no serious illness, decide to end her "
            "life at a Swiss clinic?",
            False,
        ),
    ],
)
def test_what_leans_on_the_conversation(question, leans):
    assert leans_on_context(question) is leans
