"""Building the index: exact offsets, incremental updates, crash safety, refusal of a mismatched index."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace

import pytest
from conftest import ALBANIA_REASON, SEEDS, kill_while_embedding

from rag import commit, indexer, store
from rag.articles import unpack_text
from rag.building import build_index as build_and_warm
from rag.indexer import build_index
from rag.retrieve import SearchIndex
from rag.store import IndexMismatch


def _no_model_load(monkeypatch):
    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(indexer, "Embedder", refuse)


def test_every_chunk_and_sentence_is_an_exact_slice(seed_index):
    conn = sqlite3.connect(seed_index / store.DB_NAME)
    texts = {d: unpack_text(t) for d, t in conn.execute("SELECT doc_id, text FROM documents")}
    chunks = conn.execute("SELECT doc_id, start, end, first_sentence, last_sentence FROM chunks").fetchall()
    sentences = {(d, o): (s, e) for d, o, s, e in conn.execute("SELECT doc_id, ord, start, end FROM sentences")}
    assert len(chunks) > 5
    for doc, start, end, first, last in chunks:
        assert texts[doc][start:end].startswith(texts[doc][slice(*sentences[(doc, first)])])
        assert texts[doc][start:end].endswith(texts[doc][slice(*sentences[(doc, last)])])
    for (doc, _), (s, e) in sentences.items():
        piece = texts[doc][s:e]
        assert piece == piece.strip() and piece


def test_incremental_add_edit_delete_embed_only_what_changed(tmp_path, seeds_copy, settings, embedder, monkeypatch):
    index = tmp_path / "index"
    first = build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    assert (first.added, first.embedded) == (1, first.chunks)

    (seeds_copy / "new.txt").write_text("خبر جديد\nافتتحت المدينة متحفا للفنون. وحضر الافتتاح مئات الزوار.\n")
    seed = next(seeds_copy.glob("000_*.txt"))
    text = seed.read_text(encoding="utf-8")
    seed.write_text(text.replace("جماعة إرهابية", "جماعة إرهابية محظورة"), encoding="utf-8")
    second = build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    assert (second.added, second.updated, second.removed, second.unchanged) == (1, 1, 0, 0)
    assert second.embedded == 1 + 1  # the new one-chunk article, and the one edited chunk of the seed
    assert second.reused == first.chunks - 1

    _no_model_load(monkeypatch)
    (seeds_copy / "new.txt").unlink()
    third = build_index(seeds_copy, index, settings=settings, progress=False)
    assert (third.added, third.updated, third.removed, third.embedded) == (0, 0, 1, 0)
    assert third.chunks == first.chunks

    again = build_index(seeds_copy, index, settings=settings, progress=False)
    assert (again.added, again.updated, again.removed, again.unchanged, again.embedded) == (0, 0, 0, 1, 0)
    assert not again.model_loaded


def test_bad_files_are_skipped_and_the_rest_indexed(tmp_path, seeds_copy, settings, embedder):
    (seeds_copy / "cp1256.txt").write_bytes("عنوان\nنص".encode("cp1256"))
    (seeds_copy / "empty.txt").write_bytes(b"")
    (seeds_copy / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    warned: list[str] = []
    stats = build_index(
        seeds_copy, tmp_path / "i", settings=settings, embedder=embedder, progress=False, on_warning=warned.append
    )
    assert stats.added == 1 and len(stats.skipped) == 3 and len(warned) == 3


def test_index_built_with_other_settings_is_refused(seed_index, settings):
    other = replace(settings, chunk_chars=settings.chunk_chars + 100)
    with pytest.raises(IndexMismatch, match="rag index --rebuild"):
        SearchIndex(seed_index, other)
    with pytest.raises(IndexMismatch, match="rag index --rebuild"):
        build_index(SEEDS, seed_index, settings=other, progress=False)


def _articles(folder, n):
    base = (SEEDS / "000_7ff0f6d648445017.txt").read_text(encoding="utf-8").splitlines()[1:-1]
    for i in range(n):
        body = "\n".join(f"{line} (نسخة {i})" for line in reversed(base))
        (folder / f"copy_{i:02d}.txt").write_text(f"نسخة رقم {i}\n{body}\n", encoding="utf-8")


def test_killed_build_leaves_the_old_index_answering_and_the_next_run_finishes(
    tmp_path, seeds_copy, settings, embedder
):
    index = tmp_path / "index"
    build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    _articles(seeds_copy, 6)
    env = {**os.environ, "RAG_BATCH_SIZE": "4", "RAG_MODEL": str(settings.model)}
    cmd = [sys.executable, "-m", "rag.cli", "index", "--seeds", str(seeds_copy), "--index", str(index), "--quiet"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_while_embedding(proc, index)

    old = SearchIndex(index, settings, embedder=embedder)
    assert len(old.documents()) == 1  # the half-done build is invisible
    hits = old.search("لماذا قطعت ألبانيا علاقاتها مع إيران؟")
    assert any(ALBANIA_REASON in h.text for h in hits)

    resumed = build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    assert resumed.added == 6
    assert resumed.reused >= 8  # the vectors computed before the kill were kept, not computed again
    assert resumed.embedded > 0
    assert old.refresh() and len(old.documents()) == 7
    assert len(old) == resumed.chunks


def test_rebuild_reuses_stored_vectors(tmp_path, seeds_copy, settings, embedder, monkeypatch):
    index = tmp_path / "index"
    first = build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    _no_model_load(monkeypatch)
    again = build_index(seeds_copy, index, settings=settings, rebuild=True, progress=False)
    assert (again.added, again.embedded, again.reused, again.chunks) == (1, 0, first.chunks, first.chunks)


def test_index_of_an_older_format_is_rebuilt_by_the_next_build_without_embedding(
    tmp_path, seeds_copy, settings, embedder, monkeypatch
):
    index = tmp_path / "index"
    first = build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    db = sqlite3.connect(index / store.DB_NAME)
    with db:
        db.execute("UPDATE meta SET value = '1' WHERE key = 'format_version'")
    db.close()
    with pytest.raises(IndexMismatch, match="rag index"):
        SearchIndex(index, settings, embedder=embedder)
    _no_model_load(monkeypatch)
    warned: list[str] = []
    again = build_index(seeds_copy, index, settings=settings, progress=False, on_warning=warned.append)
    assert (again.embedded, again.chunks) == (0, first.chunks) and "rebuilding" in warned[0]
    assert SearchIndex(index, settings, embedder=embedder).search("لماذا قطعت ألبانيا علاقاتها مع إيران؟")


def _caches_from_scratch(index):
    """The BM25 and name matcher a reader computes from every article of the index."""
    from rag.lexical import BM25
    from rag.spelling import NameMatcher

    conn = sqlite3.connect(index / store.DB_NAME)
    bm25 = BM25(unpack_text(t).split() for (t,) in conn.execute("SELECT terms FROM documents ORDER BY doc_id"))
    names = NameMatcher.from_texts(
        f"{t} {unpack_text(x)}" for t, x in conn.execute("SELECT title, text FROM documents")
    )
    conn.close()
    return bm25, names


def test_a_small_build_derives_its_caches_from_the_previous_generation(tmp_path, settings, embedder, monkeypatch):
    from distractors import write_distractors

    from rag.lexical import BM25, bm25_terms
    from rag.spelling import NameMatcher

    seeds, index = tmp_path / "seeds", tmp_path / "index"
    seeds.mkdir()
    write_distractors(seeds)
    build_and_warm(seeds, index, settings=settings, embedder=embedder, progress=False)

    def rebuilt(*_a, **_k):
        raise AssertionError("the caches were computed from every article again")

    monkeypatch.setattr(SearchIndex, "warm", rebuilt)  # the reader finds this generation's caches already made
    monkeypatch.setattr(commit, "_write_faiss", rebuilt)
    (seeds / "new.txt").write_text("خبر جديد\nافتتحت بلدية زيلاندا متحفا للفنون الرقمية. وحضر الافتتاح مئات الزوار.\n")
    victim, edited = sorted(seeds.glob("news_*.txt"))[:2]
    victim.unlink()
    edited.write_text(edited.read_text(encoding="utf-8") + "\nوأضاف المتحدث أن كوبنهاغن سترسل وفدا.\n")
    stats = build_and_warm(seeds, index, settings=settings, embedder=embedder, progress=False)
    assert (stats.added, stats.updated, stats.removed) == (1, 1, 1)

    generation = store.read_meta(sqlite3.connect(index / store.DB_NAME))["generation"]
    assert [p.name for p in index.glob("cache-*")] == [f"cache-{generation}"]  # the old generation's are gone
    carried_bm25 = BM25.load(store.cache_dir(index, generation) / store.BM25_CACHE)
    carried_names = NameMatcher.load(store.cache_dir(index, generation) / store.NAMES_CACHE)
    scratch_bm25, scratch_names = _caches_from_scratch(index)
    assert carried_bm25.n_docs == scratch_bm25.n_docs and set(carried_bm25.vocab) == set(scratch_bm25.vocab)
    for question in ("متحف الفنون الرقمية", "كوبنهاغن وفد", "النفط أسعار", "زيلاندا"):
        terms = bm25_terms(question)
        assert carried_bm25.scores(terms) == pytest.approx(scratch_bm25.scores(terms), abs=1e-5)
    assert carried_bm25.scores(bm25_terms("زيلاندا")).max() > 0  # the new article is found
    assert type(carried_bm25.data).__name__ == "memmap"  # a reader maps the weights: only asked columns are read
    assert carried_names.counts == scratch_names.counts
    assert carried_names.by_skeleton == scratch_names.by_skeleton

    # The FAISS file: the old one less the removed and replaced chunks, plus the new ones; each id's vector as stored.
    import faiss
    import numpy as np

    from rag.vectors import decode_vectors, stored_dim

    reader = SearchIndex(index, settings, embedder=embedder)
    conn = sqlite3.connect(index / store.DB_NAME)
    rows = conn.execute("SELECT c.id, e.vector FROM chunks c JOIN embeddings e USING (embed_hash)").fetchall()
    assert sorted(faiss.vector_to_array(reader.vectors.id_map).tolist()) == sorted(r[0] for r in rows)
    stored = decode_vectors([r[1] for r in rows], stored_dim(rows[0][1]))
    held = np.stack([reader.vectors.reconstruct(int(r[0])) for r in rows])
    assert float((stored * held).sum(1).min()) > 0.999
    assert reader.search("متحف الفنون الرقمية في زيلاندا")[0].doc_id == "new.txt"


def test_name_matcher_changes_are_kept_beside_its_file_then_folded_in(tmp_path, monkeypatch):
    """A small build links the previous name matcher and keeps its change beside it; a large change, or a reader
    that computes the matcher itself, writes the whole file. Each way, what loads is what a rebuild would give."""
    from rag import spelling
    from rag.spelling import NameMatcher

    texts = ["قال إيدي راما إن ألبانيا قطعت العلاقات", "وصل السهلاوي إلى الرياض", "افتتحت بلدية زيلاندا متحفا"]
    first, second, third = (tmp_path / str(i) / "names.json.gz" for i in range(3))
    for path in (first, second, third):
        path.parent.mkdir()
    NameMatcher.from_texts(texts).save(first)

    def same_as_scratch(path, now):
        loaded, scratch = NameMatcher.load(path), NameMatcher.from_texts(now)
        assert loaded.counts == scratch.counts and loaded.by_skeleton == scratch.by_skeleton
        assert loaded.match("Zilanda") == scratch.match("Zilanda")

    NameMatcher.save_derived(first, second, texts[1:2], ["وصل الهزازي إلى جدة"])
    after = [texts[0], texts[2], "وصل الهزازي إلى جدة"]
    assert second.samefile(first) or second.read_bytes() == first.read_bytes()  # linked: the words are not read
    assert (second.parent / "changes-names.json.gz").is_file()
    same_as_scratch(second, after)
    assert NameMatcher.load(second).match("Hazazi") and not NameMatcher.load(second).match("Sahlawi")

    monkeypatch.setattr(spelling, "COMPACT_WORDS", 3)  # the change grows past the limit: folded in
    NameMatcher.save_derived(second, third, texts[2:3], [])
    assert not (third.parent / "changes-names.json.gz").exists()
    same_as_scratch(third, after[::2])

    NameMatcher.from_texts(texts).save(second)  # a reader's whole file makes the change beside it obsolete
    assert not (second.parent / "changes-names.json.gz").exists()
    same_as_scratch(second, texts)


def test_files_unchanged_since_the_last_build_are_not_read_again(tmp_path, settings, embedder, monkeypatch):
    from distractors import write_distractors

    seeds, index = tmp_path / "seeds", tmp_path / "index"
    paths = write_distractors(seeds)
    bulk = seeds / "bulk.jsonl"  # a file of several articles, whose ids are not its name
    rows = [{"id": f"b{i}", "title": f"خبر {i}", "text": f"أعلنت البلدية رقم {i} خطة للحدائق."} for i in range(3)]
    bulk.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    paths.append(bulk)
    for p in paths:  # settled files: older than a timestamp's resolution
        os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns - 10**10))
    first = build_index(seeds, index, settings=settings, embedder=embedder, progress=False)
    read: list[str] = []
    real = indexer.read_articles

    def recording(folder, files=None):
        read.extend(f.name for f in files)
        return real(folder, files)

    monkeypatch.setattr(indexer, "read_articles", recording)
    again = build_index(seeds, index, settings=settings, embedder=embedder, progress=False)
    assert read == [] and again.unchanged == first.added and again.embedded == 0

    edited = paths[3]  # same size, new words: the time tells
    edited.write_text(edited.read_text(encoding="utf-8").replace("ال", "لا", 1), encoding="utf-8")
    (seeds / "fresh.txt").write_text("خبر\nافتتحت بلدية زيلاندا متحفا للفنون الرقمية.\n", encoding="utf-8")
    paths[5].unlink()
    third = build_index(seeds, index, settings=settings, embedder=embedder, progress=False)
    assert sorted(read) == sorted([edited.name, "fresh.txt"])
    assert (third.added, third.updated, third.removed, third.unchanged) == (1, 1, 1, first.added - 2)
    assert SearchIndex(index, settings, embedder=embedder).search("متحف الفنون الرقمية في زيلاندا")
    read.clear()
    fourth = build_index(seeds, index, settings=settings, embedder=embedder, progress=False)
    assert sorted(read) == sorted([edited.name, "fresh.txt"])  # changed seconds ago: read until they settle
    assert (fourth.added, fourth.updated, fourth.removed) == (0, 0, 0)
