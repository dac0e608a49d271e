"""Trust: near-topic questions refused with what is missing, times outside the corpus, dated citations, and
syndicated copies of a story counted once."""

from __future__ import annotations

import json
import shutil
from datetime import date

import pytest
from conftest import ALBANIA_REASON, ROOT, SEEDS

from rag import answer, article_text
from rag.indexer import build_index
from rag.timeq import DateRange, question_period

UI_EXAMPLES = ["Who does Britain say was behind the cyberattack on Albania?", "لماذا قطعت ألبانيا علاقاتها مع إيران؟"]


@pytest.mark.parametrize(
    ("question", "start", "end", "precision"),
    [
        ("What did OPEC decide in Vienna on 4 December 2015?", date(2015, 12, 4), date(2015, 12, 4), "day"),
        ("Where did Brent close on August 24, 2015?", date(2015, 8, 24), date(2015, 8, 24), "day"),
        ("كم امرأة فازت في الانتخابات التي أجريت في ديسمبر 2015؟", date(2015, 12, 1), date(2015, 12, 31), "month"),
        ("ماذا حدث في ١٥ يوليو/تموز ٢٠١٥؟", date(2015, 7, 15), date(2015, 7, 15), "day"),
        ("ماذا حدث في كانون الأول من عام 2015؟", date(2015, 12, 1), date(2015, 12, 31), "month"),
        ("Who won the 2014 final?", date(2014, 1, 1), date(2014, 12, 31), "year"),
    ],
)
def test_question_period(question, start, end, precision):
    p = question_period(question)
    assert p is not None and (p.start, p.end, p.precision) == (start, end, precision)


@pytest.mark.parametrize("question", ["why did Albania cut ties?", "How many? 24 hours", "ما هي عاصمة أستراليا؟"])
def test_no_period_in_a_question_without_a_time(question):
    assert question_period(question) is None


def test_date_range_of_stored_dates():
    r = DateRange.of(["2015-07-21 02:51:32", "2015-08-11", "", None, "not a date"])
    assert (r.first, r.last, r.undated) == (date(2015, 7, 21), date(2015, 8, 11), 3)
    assert r.describe() == "from 21 July 2015 to 11 August 2015"


def test_unrelated_question_refused_with_what_is_missing_and_related_reading(seed_index):
    a = answer("ما هي عاصمة أستراليا؟", index_dir=seed_index)
    assert not a.found and a.citations == []
    assert "أستراليا" in a.missing and a.missing in a.text  # said in the question's language
    assert len(a.related) == 1 and a.related[0]["title"].startswith("إيران وألبانيا")
    assert "[1]" not in a.text  # related reading is not a citation


@pytest.mark.parametrize(
    "question",
    ["How many pilgrims died in the stampede at Mina?", "ما هو سعر النفط اليوم؟", "Who won the 2014 World Cup?"],
)
def test_over_the_seed_alone_another_event_is_refused(seed_index, question):
    """One article gives no lead to read: how its best chunk stands out from the next articles is unknown, not the
    top lead (the Mina question was answered, flagged partial, with quotes on Mujahedin-e Khalq)."""
    a = answer(question, index_dir=seed_index)
    assert not a.found and a.citations == [] and a.missing


@pytest.mark.parametrize("question", UI_EXAMPLES)
def test_over_the_seed_alone_its_own_questions_are_answered(seed_index, question):
    assert answer(question, index_dir=seed_index).found


def test_near_topic_question_is_never_a_plain_answer(news_index):
    """The corpus has an article on the Hajj season, none on a stampede: refused, or flagged partial, naming what
    the quotes lack, never presented as the answer."""
    a = answer("How many pilgrims died in the stampede at Mina during the Hajj?", index_dir=news_index)
    if a.found:
        assert a.partial and "stampede" in a.partial and a.text.startswith(a.partial)
    else:
        assert a.missing and 1 <= len(a.related) <= 3


def test_english_refusal_names_the_missing_words(news_index):
    a = answer("How many people were killed in the chemical explosions at the port of Tianjin?", index_dir=news_index)
    assert not a.found and a.citations == []
    assert a.missing.startswith("No article mentions") and "explosions" in a.missing, a.missing
    assert 1 <= len(a.related) <= 3


def test_answer_that_holds_the_question_is_not_flagged_partial(seed_index):
    a = answer("Who does Britain say was behind the cyberattack on Albania?", index_dir=seed_index)
    assert a.found and not a.partial


DATED = [
    {
        "id": "a1",
        "title": "مجلس الوزراء يوافق على اتفاقية للتعاون الجمركي",
        "text": "وافق مجلس الوزراء في جلسته اليوم على اتفاقية للتعاون الجمركي مع ألمانيا. "
        "وقال الوزير إن الاتفاقية تشمل تبادل المعلومات وتدريب الموظفين.",
        "url": "http://example.org/a1",
        "date": "2015-07-21 02:51:32",
    },
    {
        "id": "a2",
        "title": "أوبك تبقي على سقف الإنتاج",
        "text": "قررت منظمة أوبك في اجتماعها الإبقاء على سقف الإنتاج دون تغيير عند ثلاثين مليون برميل يوميا. "
        "وقال الأمين العام للمنظمة إن السوق ستتوازن.",
        "url": "http://example.org/a2",
        "date": "2015-08-11",
    },
]


@pytest.fixture(scope="module")
def dated_index(tmp_path_factory, settings, embedder):
    seeds = tmp_path_factory.mktemp("dated-seeds")
    with open(seeds / "news.jsonl", "w", encoding="utf-8") as fh:
        for row in DATED:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    index_dir = tmp_path_factory.mktemp("dated-index")
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    return index_dir


def test_citations_carry_the_article_date_and_link(dated_index):
    a = answer("ما الذي قررته أوبك بشأن سقف الإنتاج؟", index_dir=dated_index)
    assert a.found
    c = a.citations[0]
    assert c.doc_id == "news.jsonl#a2" and c.date == "2015-08-11" and c.url == "http://example.org/a2"
    assert article_text(c.doc_id, dated_index)[c.start : c.end] == c.quote


@pytest.mark.parametrize(
    ("question", "period"),
    [
        ("What did OPEC decide at its meeting on 4 December 2015?", "4 December 2015"),
        ("ماذا قررت أوبك في اجتماعها في ديسمبر 2015؟", "ديسمبر 2015"),
    ],
)
def test_a_time_after_the_corpus_is_refused_with_the_range(dated_index, question, period):
    a = answer(question, index_dir=dated_index)
    assert not a.found and a.citations == []
    assert period in a.missing and "2015" in a.missing
    assert ("21 July 2015" in a.missing) or ("21 يوليو 2015" in a.missing)


def _with_copies(tmp_path, copies: int):
    seeds = tmp_path / f"seeds-{copies}"
    seeds.mkdir()
    original = next(SEEDS.glob("*.txt"))
    shutil.copy(original, seeds)
    lines = original.read_text(encoding="utf-8").splitlines()
    for i in range(copies):  # a syndicated copy: the same story with one line of the outlet's own added
        extra = f"وتابع مراسل الوكالة رقم {i + 1} تطورات القضية من العاصمة تيرانا."
        copy = [*lines[:3], extra, *lines[3:]]
        (seeds / f"copy-{i}.txt").write_text("\n".join(copy) + "\n", encoding="utf-8")
    return seeds


@pytest.mark.parametrize("copies", [1, 3])
def test_near_copies_of_the_story_do_not_hide_its_answer(tmp_path, settings, embedder, copies):
    seeds = _with_copies(tmp_path, copies)
    index_dir = tmp_path / f"index-{copies}"
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    for question in UI_EXAMPLES:
        a = answer(question, index_dir=index_dir)
        assert a.found, (copies, question, a.confidence)
    a = answer("لماذا قطعت ألبانيا علاقاتها مع إيران؟", index_dir=index_dir)
    assert any(ALBANIA_REASON in c.quote for c in a.citations)
    quotes = [" ".join(c.quote.split()) for c in a.citations]
    assert len(quotes) == len(set(quotes))  # a copy's identical sentence is not cited twice


def test_filters_narrow_the_search_and_never_fall_back(dated_index):
    a = answer("ما الاتفاقية التي وافق عليها مجلس الوزراء مع ألمانيا؟", index_dir=dated_index, until="2015-07-31")
    assert a.found and {c.doc_id for c in a.citations} == {"news.jsonl#a1"}
    a = answer("ما الذي قررته أوبك بشأن سقف الإنتاج؟", index_dir=dated_index, since="2015-08-12")
    assert not a.found and a.citations == [] and "لا توجد مقالة تطابق التصفية" in a.missing
    a = answer("What did OPEC decide about its production ceiling?", index_dir=dated_index, outlets=["okaz"])
    assert not a.found and a.missing == "No article matches the filter (from okaz)."
    a = answer("ما الذي قررته أوبك بشأن سقف الإنتاج؟", index_dir=dated_index, outlets=["news.jsonl"])
    assert a.found and a.citations[0].doc_id == "news.jsonl#a2"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"since": "2015-13-01"}, "since must be a date as YYYY-MM-DD"),
        ({"until": "yesterday"}, "until must be a date as YYYY-MM-DD"),
        ({"since": "2015-08-05", "until": "2015-08-01"}, "is before since"),
    ],
)
def test_bad_filters_are_one_line(dated_index, kwargs, message):
    with pytest.raises(ValueError, match=message):
        answer("ما الذي قررته أوبك؟", index_dir=dated_index, **kwargs)


def test_cli_filters_and_corpus_dates(dated_index):
    import subprocess
    import sys

    def rag(*args):
        return subprocess.run(
            [sys.executable, "-m", "rag.cli", *args], capture_output=True, text=True, timeout=300, cwd=ROOT
        )

    out = rag("ask", "ما الذي قررته أوبك بشأن سقف الإنتاج؟", "--index", str(dated_index), "--since", "2015-08-01")
    assert out.returncode == 0 and "[1]" in out.stdout and "2015-08-11" in out.stdout, out.stderr
    out = rag("ask", "ما الذي قررته أوبك؟", "--index", str(dated_index), "--since", "2015-08-32")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "YYYY-MM-DD" in out.stderr
    out = rag("ask", "ما الذي قررته أوبك؟", "--index", str(dated_index), "--json", "--outlet", "okaz")
    data = json.loads(out.stdout)
    assert not data["found"] and data["corpus_dates"] == {"first": "2015-07-21", "last": "2015-08-11", "undated": 0}
