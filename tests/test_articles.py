"""Reading and cleaning articles: furniture goes, every sentence stays, bad files are skipped with a warning."""

from __future__ import annotations

import itertools
import json

from conftest import SEEDS

from rag.articles import clean_text, is_blob, read_articles
from rag.chunking import chunk_sentences, split_sentences


def test_seed_article_loses_tracking_blob_and_footer_but_keeps_every_sentence():
    (article,), warnings = read_articles(SEEDS)
    assert warnings == []
    assert article.title.startswith("إيران وألبانيا")
    assert "aXA6IDMuMTI5LjQyLjE5OCA=" not in article.text
    assert "جزيرة ام اند امز" not in article.text
    raw_lines = [line for line in (SEEDS / article.source).read_text(encoding="utf-8").splitlines()[1:-1] if line]
    for line in raw_lines:
        assert line.strip() in article.text
    assert article.text.endswith("العلماء النوويين الإيرانيين.")


def test_blob_rules_are_general():
    assert is_blob("aXA6IDMuMTI5LjQyLjE5OCA=")
    assert is_blob("https://example.com/a?b=c")
    assert not is_blob("Mandiant")
    assert not is_blob("الحكومة")
    assert clean_text("سطر أول.\nZm9vYmFyYmF6cXV4MTIzNDU2Nzg5\nسطر ثان.") == "سطر أول.\nسطر ثان."


def test_unreadable_inputs_are_skipped_with_one_warning_each(tmp_path):
    seeds = tmp_path / "seeds"
    (seeds / "sub").mkdir(parents=True)
    (seeds / "good.txt").write_text("عنوان\nنص المقال هنا.", encoding="utf-8")
    (seeds / "sub" / "nested.md").write_text("Title\nBody text.", encoding="utf-8")
    (seeds / "latin1.txt").write_bytes("عنوان".encode("cp1256") + b"\n\xe9\xe8")
    (seeds / "empty.txt").write_bytes(b"")
    (seeds / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00")
    (seeds / "title_only.txt").write_text("Just a title\n\n", encoding="utf-8")
    (seeds / "notes.csv").write_text("ignored", encoding="utf-8")
    articles, warnings = read_articles(seeds)
    assert sorted(a.source for a in articles) == ["good.txt", "sub/nested.md"]
    assert len(warnings) == 4
    for name in ("latin1.txt", "empty.txt", "binary.txt", "title_only.txt"):
        assert sum(name in w for w in warnings) == 1
    assert all("\n" not in w for w in warnings)


def test_bulk_jsonl_articles(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    rows = [
        {"id": "a1", "title": "خبر", "text": "جملة أولى. جملة ثانية.", "url": "https://x.org/1", "date": "2015-07-01"},
        {"id": "a2", "title": "بلا نص", "text": "  "},
        {"title": "no id"},
    ]
    (seeds / "bulk.jsonl").write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\nnot json\n")
    articles, warnings = read_articles(seeds)
    assert [(a.doc_id, a.url, a.date) for a in articles] == [("bulk.jsonl#a1", "https://x.org/1", "2015-07-01")]
    assert len(warnings) == 3 and all(w.startswith("bulk.jsonl:") for w in warnings)


def test_sentences_keep_numbers_dates_and_abbreviations_whole():
    text = "The U.S. economy grew 3.5 percent on 15.7.2022, Dr. Smith said. Really? نعم؛ قال ذلك! وارتفع 2.5٪ اليوم."
    sentences = [text[s.start : s.end] for s in split_sentences(text)]
    assert sentences == [
        "The U.S. economy grew 3.5 percent on 15.7.2022, Dr. Smith said.",
        "Really?",
        "نعم؛",
        "قال ذلك!",
        "وارتفع 2.5٪ اليوم.",
    ]


def test_chunks_are_whole_sentences_with_overlap_and_exact_offsets():
    (article,), _ = read_articles(SEEDS)
    sentences = split_sentences(article.text)
    chunks = chunk_sentences(sentences, max_chars=400, overlap=1)
    assert chunks[0].first_sentence == 0 and chunks[-1].last_sentence == len(sentences) - 1
    for prev, nxt in itertools.pairwise(chunks):
        if prev.last_sentence > prev.first_sentence:
            assert nxt.first_sentence == prev.last_sentence  # one shared sentence
        else:
            assert nxt.first_sentence == prev.last_sentence + 1  # a lone long sentence is not repeated
    for ch in chunks:
        assert ch.start == sentences[ch.first_sentence].start and ch.end == sentences[ch.last_sentence].end
        assert ch.end - ch.start <= 400 or ch.first_sentence == ch.last_sentence


def test_symlinks_are_skipped_with_a_warning(tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("سر\nهذا نص خارج مجلد المقالات ولا يجوز أن يفهرس.\n", encoding="utf-8")
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "real.txt").write_text("خبر\nنص مقال حقيقي في مجلد المقالات.\n", encoding="utf-8")
    (seeds / "link.txt").symlink_to(outside)
    articles, warnings = read_articles(seeds)
    assert [a.source for a in articles] == ["real.txt"]
    assert any(w.startswith("link.txt: a symbolic link") for w in warnings)
