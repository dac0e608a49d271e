"""Article dates and outlets: from a record, front matter, the file name or a dateline; stored, shown and cheap to
change."""

from __future__ import annotations

import dataclasses
import json
import sqlite3

import pytest

from rag import answer
from rag.articles import read_articles
from rag.dates import article_date, dateline, front_matter
from rag.indexer import build_index
from rag.store import DB_NAME, add_missing_columns

BODY = "أعلنت الوزارة اليوم خطة جديدة لتنظيم الحشود في المشاعر المقدسة خلال موسم الحج."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("الأحساء 25 شوال 1436 هـ الموافق 10 أغسطس 2015 م واس\n" + BODY, "2015-08-10"),
        ("مكة المكرمة 25 شوال 1436 هـ واس\n" + BODY, "2015-08-10"),
        ("الرياض - ١٥ تموز ٢٠١٥\n" + BODY, "2015-07-15"),
        (BODY, ""),
        (BODY * 10 + " في 3 يوليو 2015", ""),  # a date far into the text is an event, not a dateline
    ],
)
def test_dateline(text, expected):
    assert dateline(text) == expected


def test_front_matter_is_read_and_removed():
    meta, rest = front_matter("---\ndate: 2015-07-21\noutlet: okaz\n---\nالعنوان\n" + BODY)
    assert str(meta["date"]) == "2015-07-21" and meta["outlet"] == "okaz" and rest.startswith("العنوان")
    assert front_matter("---\n: not yaml [\n---\nx")[0] == {}
    assert front_matter("no front matter") == ({}, "no front matter")


@pytest.mark.parametrize(
    ("record", "meta", "name", "text", "expected"),
    [
        ("2015-07-24 12:55:12", {}, "a.jsonl", BODY, ("2015-07-24 12:55:12", "record")),
        # the record's date is when it was collected: an earlier dateline wins
        ("2015-08-12 09:00:00", {}, "a.jsonl", "10 أغسطس 2015 م\n" + BODY, ("2015-08-10", "dateline")),
        ("2015-08-12", {"date": "2015-07-01"}, "a.jsonl", BODY, ("2015-07-01", "front-matter")),
        ("", {}, "snn_00000_aawsat_2015-07-21.txt", BODY, ("2015-07-21", "file-name")),
        ("", {}, "plain.txt", "10 أغسطس 2015\n" + BODY, ("2015-08-10", "dateline")),
        ("", {}, "plain.txt", BODY, ("", "")),
    ],
)
def test_article_date_and_where_it_came_from(record, meta, name, text, expected):
    assert article_date(record, meta, name, text) == expected


def test_txt_front_matter_and_jsonl_source_reach_the_article(tmp_path):
    (tmp_path / "okaz").mkdir()
    (tmp_path / "okaz" / "news_2015-08-02.txt").write_text("العنوان\n" + BODY, encoding="utf-8")
    (tmp_path / "dated.md").write_text(
        "---\ndate: 2015-07-30\noutlet: alriyadh\nurl: http://example.org/x\n---\nعنوان آخر\n" + BODY, encoding="utf-8"
    )
    rec = {"id": "1", "title": "t", "text": BODY, "date": "2015-08-03 10:00:00", "source": "aawsat"}
    (tmp_path / "bulk.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    articles = {a.doc_id: a for a in read_articles(tmp_path)[0]}
    a = articles["okaz/news_2015-08-02.txt"]
    assert (a.date, a.date_source, a.outlet) == ("2015-08-02", "file-name", "okaz")
    b = articles["dated.md"]
    assert (b.date, b.date_source, b.outlet, b.url, b.title) == (
        "2015-07-30",
        "front-matter",
        "alriyadh",
        "http://example.org/x",
        "عنوان آخر",
    )
    assert not b.text.startswith("---")
    c = articles["bulk.jsonl#1"]
    assert (c.date, c.date_source, c.outlet) == ("2015-08-03 10:00:00", "record", "aawsat")


def test_a_changed_date_rewrites_the_row_and_embeds_nothing(tmp_path, settings, embedder):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    path = seeds / "a.md"
    path.write_text("---\ndate: 2015-07-30\n---\nعنوان\n" + BODY, encoding="utf-8")
    index_dir = tmp_path / "index"
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    path.write_text("---\ndate: 2015-08-01\n---\nعنوان\n" + BODY, encoding="utf-8")
    stats = build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    assert stats.updated == 1 and stats.embedded == 0
    a = answer("ما هي خطة الوزارة لتنظيم الحشود؟", index_dir=index_dir)
    assert a.found and a.citations[0].date == "2015-08-01" and a.citations[0].outlet == "a.md"


def test_an_index_from_before_outlets_gets_the_columns(tmp_path):
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE documents (doc_id TEXT PRIMARY KEY, title TEXT, source TEXT, url TEXT, date TEXT)")
    add_missing_columns(conn)
    add_missing_columns(conn)  # twice is a no-op
    cols = [r[1] for r in conn.execute("PRAGMA table_info(documents)")]
    assert cols[-2:] == ["date_source", "outlet"]


@pytest.mark.parametrize(
    ("text", "published", "expected"),
    [
        ("افتتح المتحف أمس (الأحد) في المدينة", "2015-07-27", [("أمس (الأحد)", "2015-07-26")]),
        ("قال إنه توفي أمس الأول الأحد عن 84 عاما", "2015-08-11", [("أمس الأول الأحد", "2015-08-09")]),
        ("أجريت القرعة اليوم السبت في القصر", "2015-07-25", [("اليوم السبت", "2015-07-25")]),
        # stored a day late (collected after midnight): the weekday named decides
        ("واليوم (الاثنين) قررت الحكومة", "2015-07-21", [("اليوم (الاثنين)", "2015-07-20")]),
        ("في مناقصة أغلقت يوم الجمعة الماضي", "2015-08-10", [("يوم الجمعة الماضي", "2015-08-07")]),
        (
            "وارتفعت الأسعار الأسبوع الماضي والشهر الماضي",
            "2015-08-12",
            [("الأسبوع الماضي", "2015-08-03"), ("الشهر الماضي", "2015-07")],
        ),
        ("لا يوم هنا ولا تاريخ", "2015-08-12", []),
    ],
)
def test_relative_days_resolved_against_the_article_date(text, published, expected):
    from rag.dates import relative_days
    from rag.timeq import parse_date

    found = relative_days(text, parse_date(published))
    assert [(d["text"], d["date"]) for d in found] == expected
    for d in found:
        assert text[d["start"] : d["end"]] == d["text"]


def test_a_when_question_gets_the_resolved_date_first(tmp_path, settings, embedder):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    body = (
        "أعيد افتتاح متحف الموسيقار ريتشارد فاغنر أمس (الأحد) في مدينة بايرويت بعد ترميمه.\nوحضر الافتتاح مئات الزوار."
    )
    rec = {"id": "w", "title": "افتتاح متحف فاغنر", "text": body, "date": "2015-07-27 17:13:13", "source": "aawsat"}
    (seeds / "news.jsonl").write_text(json.dumps(rec, ensure_ascii=False) + "\n", encoding="utf-8")
    index_dir = tmp_path / "index"
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    a = answer("متى أعيد افتتاح متحف فاغنر في بايرويت؟", index_dir=index_dir)
    assert a.found and a.text.startswith("الأحد 26 يوليو 2015 — «أمس (الأحد)» [1]")
    assert a.short["kind"] == "date" and a.short["value"] == "2015-07-26" and a.short["label"] == "Sunday 26 July 2015"
    c = a.citations[0]
    assert c.outlet == "aawsat" and c.dates and c.dates[0]["date"] == "2015-07-26"
    from rag import article_text

    text = article_text(c.doc_id, index_dir)
    assert text[c.dates[0]["start"] : c.dates[0]["end"]] == "أمس (الأحد)"


def _dated_corpus(tmp_path, settings, embedder, records: list[tuple[str, str, str]]):
    """An index of (id, date, text) records as one .jsonl (outlet "okaz") among the tests' distractor articles, and a
    chain over it per settings."""
    from distractors import write_distractors

    from rag.chain import make_chain
    from rag.retrieve import SearchIndex

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    rows = [{"id": i, "title": "", "text": t, "date": d, "source": "okaz"} for i, d, t in records]
    (seeds / "news.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    write_distractors(seeds)
    build_index(seeds, tmp_path / "index", settings=settings, embedder=embedder, progress=False)
    return lambda s: make_chain(SearchIndex(tmp_path / "index", s, embedder=embedder))


BRENT = [
    ("b1", "2015-07-25", "استقر سعر مزيج برنت عند التسوية يوم الجمعة عند 54.62 دولار للبرميل بعد تراجع الطلب الصيني."),
    ("b2", "2015-08-04", "أنهى خام برنت تعاملات أمس الاثنين عند 49.52 دولار للبرميل عند التسوية."),
    ("b3", "2015-08-11", "ارتفع سعر مزيج برنت عند التسوية يوم الاثنين إلى 50.41 دولار للبرميل مع صعود الأسهم."),
]


def test_a_day_in_the_question_ranks_that_days_report_first(tmp_path, settings, embedder):
    chain = _dated_corpus(tmp_path, settings, embedder, BRENT)
    question = "At what price did Brent crude settle on Monday 3 August 2015?"
    a = chain(settings).invoke(question)
    assert a.found and a.citations[0].doc_id.endswith("b2") and "49.52" in a.citations[0].quote
    # without the time prior the best-worded report of another day comes first: the prior is what picks the day
    flat = chain(dataclasses.replace(settings, time_weight=0.0)).invoke(question)
    assert not flat.citations[0].doc_id.endswith("b2")


SURUC = [
    ("s1", "2015-07-21", "قالت وزارة الداخلية التركية اليوم إن انفجارا في بلدة سروج أسفر عن مقتل 27 شخصا."),
    ("s2", "2015-07-23", "ارتفعت حصيلة قتلى التفجير الانتحاري في بلدة سروج التركية إلى 30 قتيلا."),
    ("s3", "2015-08-10", "التفجير الانتحاري في سروج أوقع 32 قتيلا ونسب لتنظيم داعش، بحسب السلطات التركية."),
]


def test_a_latest_question_quotes_the_newest_report_first(tmp_path, settings, embedder):
    chain = _dated_corpus(tmp_path, settings, embedder, SURUC)
    question = "What is the latest death toll from the suicide bombing in Suruc?"
    a = chain(settings).invoke(question)
    assert a.found and "32" in a.citations[0].quote and a.citations[0].date.startswith("2015-08-10")
    flat = chain(dataclasses.replace(settings, recency_weight=0.0)).invoke(question)
    assert "32" not in flat.citations[0].quote  # the recency prior is what puts the newest first


def test_relative_times_in_a_question_count_from_the_newest_article():
    from datetime import date

    from rag.timeq import question_period

    now = date(2015, 8, 11)  # a Tuesday
    assert question_period("What did the cabinet decide yesterday?", now).start == date(2015, 8, 10)
    week = question_period("ماذا حدث في اليمن الأسبوع الماضي؟", now)
    assert (week.start, week.end, week.precision) == (date(2015, 8, 3), date(2015, 8, 9), "week")
    assert question_period("What happened on Thursday?", now).start == date(2015, 8, 6)
    assert question_period("ماذا قرر مجلس الوزراء يوم الاثنين؟", now).start == date(2015, 8, 10)
    # an explicit date wins over its weekday, and without a "now" nothing relative is read
    assert question_period("on Monday 3 August 2015", now).start == date(2015, 8, 3)
    assert question_period("What did the cabinet decide yesterday?") is None
