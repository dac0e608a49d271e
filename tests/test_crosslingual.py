"""English questions over Arabic news: the lexicon, name matching, dense-only fallback, and calibrated refusal."""

from __future__ import annotations

import json
import logging
import shutil
from functools import partial

import pytest
from conftest import ALBANIA_REASON

from rag import answer, article_text
from rag.crosslingual import Lexicon, english_key, translate_question
from rag.indexer import build_index
from rag.names import attested_spellings
from rag.places import Places, get_places, nisba
from rag.retrieve import SearchIndex
from rag.settings import Settings
from rag.spelling import NameMatcher

DICTIONARY = Settings().lexicon
needs_dictionary = pytest.mark.skipif(
    not (DICTIONARY / "freedict-eng-ara.index").is_file(),
    reason=f"FreeDict English-Arabic is not installed at {DICTIONARY} (`make install` installs it as root)",
)


@pytest.fixture(scope="module")
def lexicon(tmp_path_factory) -> Lexicon:
    return Lexicon.load(DICTIONARY, tmp_path_factory.mktemp("lexicon-cache"))


def _alternatives(concepts) -> list[str]:
    return [a for c in concepts for a in c.alternatives]


@needs_dictionary
def test_lexicon_parses_and_translates_the_albania_question(lexicon, tmp_path):
    assert len(lexicon) > 50_000
    assert english_key("Ministers announced") == "minister announce"
    assert "الوزير" in lexicon.get("minister")
    concepts = translate_question("why did Albania cut ties?", lexicon)
    alternatives = _alternatives(concepts)
    assert "ألبانيا" in alternatives
    assert any("قطع" in a or "العلاقات" in a for a in alternatives), concepts
    assert not any(c.source.lower() in ("why", "did") for c in concepts)  # question words carry no topic


@needs_dictionary
def test_phrases_numbers_and_structured_concepts(lexicon):
    concepts = translate_question("What did the prime minister say about the 2016 decision?", lexicon)
    by_source = {c.source: c for c in concepts}
    assert "رئيس الوزراء" in by_source["prime minister"].alternatives  # one concept, not two words
    assert by_source["2016"].kind == "number" and by_source["2016"].alternatives == ["2016"]
    assert all(len(c.alternatives) <= 6 for c in concepts)  # many senses still make one concept


def test_names_missing_from_the_dictionary_are_found_in_the_corpus(seed_index, settings):
    matcher = NameMatcher.from_texts([article_text(d, seed_index) for d in SearchIndex(seed_index, settings).doc_ids])
    assert matcher.match("Mandiant")[:1] == ["منديانت"]
    assert matcher.match("Tirana")[:1] == ["تيرانا"]
    assert matcher.match("Rama")[:1] == ["راما"]
    assert matcher.match("Xylophonics") == []
    concepts = translate_question("What did Mandiant find?", None, matcher)
    assert concepts[0].kind == "name" and "منديانت" in concepts[0].alternatives


@pytest.fixture(scope="module")
def places_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("places-cache")


@pytest.fixture(scope="module")
def places(places_dir) -> Places:
    return get_places(places_dir)


def test_places_and_demonyms_take_their_arabic_names_not_the_name_matchers_guesses(places, places_dir):
    matcher = NameMatcher.from_texts(["لعب الفريق في حلب وينبع والظهران", "قال السوريون والجزائريون والنيجيريون"])
    concepts = translate_question("How many died in Aleppo, Yanbu and Dhahran?", None, matcher, places=places)
    by_source = {c.source: c for c in concepts}
    assert by_source["Aleppo"].alternatives == ["حلب"] and by_source["Aleppo"].kind == "name"  # not لعب
    assert "ينبع" in by_source["Yanbu"].alternatives and "الظهران" in by_source["Dhahran"].alternatives
    phrase = translate_question("Who flew to New York?", None, matcher, places=places)
    assert [c.source for c in phrase] == ["New York"] and "نيويورك" in phrase[0].alternatives  # one concept
    assert places.demonym("Syrians").arabic[:2] == ("سوري", "سوريا")
    assert places.demonym("Nigerian").arabic[0] == "نيجيري"  # Nigeria, not Niger
    assert "جزائري" in places.demonym("Algerians").arabic and "كويتي" in places.demonym("Kuwaiti").arabic
    assert places.demonym("Xylophonian") is None
    assert (nisba("ليبيا"), nisba("الجزائر"), nisba("الولايات المتحدة")) == ("ليبي", "جزائري", None)
    # a word the dictionary knows stays a word unless the place is a country or a big city
    lexicon = Lexicon({"mobile": ["متنقل"]})
    mobile = translate_question("Which Mobile network failed?", lexicon, matcher, places=places)
    assert "متنقل" in _alternatives(mobile) and "موبيل" not in _alternatives(mobile)
    # the table is cached (JSON) and read back the same
    assert len(list(places_dir.glob("places-*.json"))) == 1
    assert Places.load(places_dir).get("aleppo") == places.get("aleppo")


def test_a_news_phrase_is_one_concept_though_a_demonym_starts_it(places):
    """ "Saudi Arabia" was the demonym Saudi and a skeleton guess at Arabia (رابع، عربيا), a name no article held."""
    matcher = NameMatcher.from_texts(["قالت السعودية إن فريقها حل رابعا عربيا في بطولة العيد"])
    lexicon = Lexicon({"saudi arabia": ["السعودية", "المملكة"], "eid al fitr": ["عيد الفطر"]})
    question = "Why does Saudi Arabia's team play after Eid al-Fitr?"
    by_source = {c.source: c for c in translate_question(question, lexicon, matcher, places=places)}
    assert by_source["Saudi Arabia"].alternatives[0] == "السعودية" and "Arabia" not in by_source
    assert by_source["Eid al Fitr"].alternatives == ["عيد الفطر"]
    alone = translate_question("Which Saudi team won?", lexicon, matcher, places=places)
    assert "سعودي" in _alternatives(alone)  # the demonym still stands alone


def test_attested_spellings_of_names_come_before_the_skeleton_matchers_guesses(tmp_path):
    # جواد and نور are written with و, which the English spellings Javad and Noor show as a v and a double o: the
    # consonant skeletons differ (jfd/jd), and the matcher alone finds nothing or a word that merely sounds alike
    matcher = NameMatcher.from_texts(["وقال جواد ظريف إن نور والعناصر نر", "جاوز الحد"])
    spellings = partial(attested_spellings, cache_dir=tmp_path)
    plain = {c.source: c.alternatives for c in translate_question("Did Zarif meet Javad and Noor?", None, matcher)}
    concepts = translate_question("Did Zarif meet Javad and Noor?", None, matcher, spellings=spellings)
    named = {c.source: c.alternatives for c in concepts}
    assert "جواد" not in plain["Javad"] and named["Javad"][0] == "جواد", (plain, named)
    assert named["Noor"][0] == "نور" and named["Zarif"][0] == "ظريف"
    # a spelling the corpus does not hold is no alternative; a stop word never is (Ben -> بين)
    assert attested_spellings("Javad", tmp_path) == ["جواد"] and "بين" not in attested_spellings("Ben", tmp_path)
    absent = translate_question("Was Haider there?", None, NameMatcher.from_texts(["لا شيء هنا"]), spellings=spellings)
    assert all("حيدر" not in c.alternatives for c in absent)
    assert len(list(tmp_path.glob("spellings-*.json"))) == 1  # built once, then read from its JSON cache


@needs_dictionary  # the month's Arabic names come from the lexicon
def test_a_date_in_the_question_is_checked_against_the_articles_dates(tmp_path, settings, embedder):
    # an article of Monday 10 August seldom writes "August": the weekday is no name, and the month is held by the
    # article's date as much as by its words
    concepts = translate_question("How many of the 300 pilgrims died in Mecca on Monday 10 August?", None)
    kinds = {c.source: c.kind for c in concepts}
    assert kinds["300"] == "number" and kinds["Mecca"] == "name" and kinds.get("Monday") != "name", kinds
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    rows = [
        {"id": "aug", "date": "2015-08-10", "title": "الحجاج", "text": "وصل الحجاج اليوم إلى مكة المكرمة."},
        {"id": "nodate", "title": "الحجاج", "text": "وصل الحجاج إلى مكة المكرمة."},
    ]
    (seeds / "news.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    build_index(seeds, tmp_path / "index", settings=settings, embedder=embedder, progress=False)
    index = SearchIndex(tmp_path / "index", settings)
    august = [c for c in index.concepts("Did the pilgrims reach Mecca in August?") if c.source == "August"]
    june = [c for c in index.concepts("Did the pilgrims reach Mecca in June?") if c.source == "June"]
    assert august and august[0].kind == "name" and june and june[0].kind == "name"
    dated, undated = (index.article_terms(d) for d in sorted(index.doc_ids))
    assert august[0].found_in(dated) and not august[0].found_in(undated) and not june[0].found_in(dated)


def test_without_the_dictionary_english_still_works_and_warns_once(seed_index, tmp_path, monkeypatch, caplog):
    index_dir = tmp_path / "index"
    shutil.copytree(seed_index, index_dir)
    monkeypatch.setenv("RAG_LEXICON", str(tmp_path / "no-dictionary-here"))
    with caplog.at_level(logging.WARNING):
        first = answer("why did Albania cut ties?", index_dir=index_dir)
        answer("Who is the Albanian prime minister?", index_dir=index_dir)
    assert first.found and any(ALBANIA_REASON in c.quote for c in first.citations), first.text
    warnings = [r for r in caplog.records if "no English-Arabic dictionary" in r.getMessage()]
    assert len(warnings) == 1 and "dense retrieval only" in warnings[0].getMessage()


@pytest.mark.parametrize(
    ("question", "evidence"),
    [
        ("why did Albania cut ties?", "قطع العلاقات الدبلوماسية"),
        ("Who is the Albanian prime minister who announced the decision?", "إيدي راما"),
        ("How long were Iranian diplomats given to leave Albania?", "24 ساعة"),
        ("Which company said the attackers on Albania were tied to the Iranian government?", "منديانت"),
        ("Where do members of the Mujahedin-e Khalq live in Albania?", "أشرف 3"),
    ],
)
def test_english_questions_about_the_seed_are_answered_among_news(news_index, question, evidence):
    a = answer(question, index_dir=news_index)
    assert a.found, (question, a.confidence)
    assert any(evidence in c.quote for c in a.citations), a.text
    for c in a.citations:
        assert article_text(c.doc_id, news_index)[c.start : c.end] == c.quote


@pytest.mark.parametrize(
    "question",
    [
        "ما هي عاصمة أستراليا؟",
        "Who won the 2018 FIFA World Cup final?",
        "How do I bake sourdough bread?",
        "What is the population of Brazil?",
        "من هو مخترع الهاتف؟",
    ],
)
def test_unrelated_questions_are_never_a_plain_answer_among_news(news_index, question):
    """Refused, or (an English question whose name no article holds) flagged partial: never shown as the answer."""
    a = answer(question, index_dir=news_index)
    if a.found:
        assert a.partial and a.text.startswith(a.partial), (question, a.confidence, a.text)
    else:
        assert a.citations == [] and a.missing
