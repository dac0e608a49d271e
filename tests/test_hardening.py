"""Hostile and careless inputs: bounded records and sentences, damaged or read-only indexes, all-or-nothing uploads
that survive kill -9, duplicate content, and a server that will not open up off loopback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import ALBANIA_REASON, ROOT, SEEDS, kill_while_embedding
from distractors import ARTICLES

import rag
from rag import commit, indexer, store
from rag.articles import SkippedInput, parse_jsonl
from rag.chunking import max_sentence_chars
from rag.cli import main
from rag.indexer import build_index
from rag.retrieve import SearchIndex

QUESTION_AR = "لماذا قطعت ألبانيا علاقاتها مع إيران؟"


def bulk(n: int, tag: str = "") -> bytes:
    """`n` distinct articles as one .jsonl upload (the distractor reports, numbered)."""
    rows = []
    for i in range(n):
        title, body = ARTICLES[i % len(ARTICLES)]
        rows.append({"id": f"{tag}{i}", "title": f"{title} ({i})", "text": f"{body} وهذا هو التقرير رقم {i}{tag}."})
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode() + b"\n"


def one_line_error(capsys, argv: list[str], fragment: str) -> str:
    """Run the CLI in this process; it must exit 2 with one line on stderr that contains `fragment`."""
    code = main(argv)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error:") and fragment in lines[0], err
    return lines[0]


# -- records and sentences -------------------------------------------------------------------------------------
def test_bulk_records_are_checked_line_by_line():
    lines = [
        {"id": "a", "title": "t", "text": "نص أول."},
        {"id": "a", "title": "t", "text": "نص آخر."},
        {"id": None, "text": {"a": 1}},
        {"id": "c", "title": 5, "text": "نص."},
    ]
    data = "\n".join(json.dumps(r, ensure_ascii=False) for r in lines) + "\n" + "[" * 200_000 + "\n"
    items = list(parse_jsonl(data.encode(), "x.jsonl"))
    errors = [str(i) for i in items if isinstance(i, SkippedInput)]
    assert [i.doc_id for i in items if not isinstance(i, SkippedInput)] == ["x.jsonl#a"]
    assert "x.jsonl:2: duplicate id 'a' (first on line 1)" in errors
    assert any(e.startswith("x.jsonl:3:") and '"id" must be a string' in e for e in errors)
    assert any(e.startswith("x.jsonl:4:") and '"title" must be a string' in e for e in errors)
    assert any(e.startswith("x.jsonl:5:") and "nested deeper" in e for e in errors)


def test_a_run_on_line_is_cut_into_bounded_sentences_and_chunks(settings):
    from rag.articles import make_article

    body = "كلمة " * 200_000 + "\n" + "ب" * 50_000  # 1 MB with no sentence end, then a 50k-character "word"
    article = make_article("long.txt", "عنوان", body, "long.txt")
    sentences, planned = indexer.plan_chunks(article, settings, "fp")
    bound = max_sentence_chars(settings)
    assert max(s.end - s.start for s in sentences) <= bound
    assert max(p.end - p.start for p in planned) <= bound
    assert "".join(article.text[s.start : s.end] for s in sentences).replace(" ", "").replace("\n", "") == (
        article.text.replace(" ", "").replace("\n", "")
    )  # nothing lost between the pieces


def test_quotes_and_passages_of_a_run_on_article_are_bounded(tmp_path, settings, embedder):
    from rag.chain import make_chain

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    run_on = "مهرجان الفراولة\n" + " ".join(["افتتحت بلدية دوريس مهرجان الفراولة السنوي بحضور آلاف الزوار"] * 120)
    (seeds / "run-on.txt").write_text(run_on, encoding="utf-8")
    build_index(seeds, tmp_path / "index", settings=settings, embedder=embedder, progress=False)
    index = SearchIndex(tmp_path / "index", settings, embedder=embedder)
    result = make_chain(index).invoke("ماذا افتتحت بلدية دوريس؟")
    bound = max_sentence_chars(settings)
    assert result.found and result.citations
    for c in result.citations:
        assert len(c.passage) <= 2 * bound and len(c.quote) <= settings.max_quoted * bound
        assert index.article_text(c.doc_id)[c.start : c.end] == c.quote


# -- damaged, misplaced and read-only indexes ------------------------------------------------------------------
@pytest.fixture
def built(tmp_path, seeds_copy, settings, embedder):
    index = tmp_path / "index"
    build_index(seeds_copy, index, settings=settings, embedder=embedder, progress=False)
    return seeds_copy, index


def _faiss_file(index: Path) -> Path:
    return index / json.loads((index / store.MANIFEST).read_text())["faiss_file"]


@pytest.mark.parametrize("fault", ["deleted", "truncated"])
def test_a_broken_vector_file_is_named_then_rebuilt_without_embedding(built, fault, capsys, monkeypatch, settings):
    seeds, index = built
    path = _faiss_file(index)
    if fault == "deleted":
        path.unlink()
    else:
        path.write_bytes(path.read_bytes()[:200])
    one_line_error(capsys, ["ask", "why did Albania cut ties?", "--index", str(index)], "run `rag index`")

    def refuse(*_a, **_k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(indexer, "Embedder", refuse)
    warnings: list[str] = []
    stats = build_index(seeds, index, settings=settings, progress=False, on_warning=warnings.append)
    assert stats.embedded == 0 and any("rebuilt from stored vectors" in w for w in warnings)
    assert SearchIndex(index, settings).vectors.ntotal == stats.chunks


def test_a_corrupted_database_is_one_line_for_ask_and_index(built, capsys):
    seeds, index = built
    db = index / store.DB_NAME
    data = bytearray(db.read_bytes())
    data[100:4096] = os.urandom(3996)  # the header's tail and the first page: sqlite's own tables
    db.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    one_line_error(capsys, ["ask", "why did Albania cut ties?", "--index", str(index)], "index")
    one_line_error(capsys, ["index", "--seeds", str(seeds), "--index", str(index), "--quiet"], "rag index")


def test_misplaced_folders_are_refused_in_one_line(tmp_path, capsys, monkeypatch):
    a_file = tmp_path / "index-file"
    a_file.write_text("not a folder")
    one_line_error(capsys, ["index", "--seeds", str(SEEDS), "--index", str(a_file)], "is a file")
    for folder in ("/", "/etc", "/usr"):
        one_line_error(capsys, ["index", "--seeds", folder, "--index", str(tmp_path / "i")], "system folder")
    many = tmp_path / "many"
    many.mkdir()
    for i in range(4):
        (many / f"{i}.txt").write_text(f"عنوان {i}\nنص المقال رقم {i}.", encoding="utf-8")
    monkeypatch.setenv("RAG_MAX_SEED_FILES", "3")
    one_line_error(capsys, ["index", "--seeds", str(many), "--index", str(tmp_path / "i")], "--yes")
    assert not (tmp_path / "i" / store.MANIFEST).exists()


@contextmanager
def read_only_copy(folder: Path):
    """A copy of `folder` that this process cannot write: chmod for a user, a read-only bind mount for root (whom
    permissions do not stop)."""
    work = Path(tempfile.mkdtemp(prefix="ro-index-"))
    copy, view = work / "copy", work / "view"
    shutil.copytree(folder, copy)
    try:
        if os.geteuid() != 0:
            for path in (*copy.iterdir(), copy):
                path.chmod(0o555 if path.is_dir() else 0o444)
            yield copy
            return
        view.mkdir()
        mounted = subprocess.run(["mount", "--bind", str(copy), str(view)], capture_output=True).returncode == 0
        if not mounted or subprocess.run(["mount", "-o", "remount,ro,bind", str(view)]).returncode != 0:
            if mounted:
                subprocess.run(["umount", str(view)])
            pytest.skip("running as root without the right to mount: cannot make a folder read-only here")
        try:
            yield view
        finally:
            subprocess.run(["umount", "--lazy", str(view)])
    finally:
        for path in copy.rglob("*"):
            path.chmod(0o755)
        copy.chmod(0o755)
        shutil.rmtree(work)


def test_a_read_only_index_can_be_queried(built, capsys):
    _, index = built
    with read_only_copy(index) as ro:
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        before = {p.name: p.stat().st_mtime_ns for p in ro.iterdir()}
        assert main(["ask", QUESTION_AR, "--json", "--index", str(ro)]) == 0, capsys.readouterr().err
        data = json.loads(capsys.readouterr().out)
        assert data["found"] and any(ALBANIA_REASON in c["quote"] for c in data["citations"])
        assert {p.name: p.stat().st_mtime_ns for p in ro.iterdir()} == before  # nothing written, nothing created
        for key in [k for k in rag._indexes if k[0] == ro.resolve()]:
            rag._indexes.pop(key).conn.close()  # let the folder go


# -- uploads --------------------------------------------------------------------------------------------------
@pytest.fixture
def service(built, settings, embedder):
    from ui.service import ChatService

    seeds, index = built
    svc = ChatService(index, seeds, settings)
    svc.index._embedder = embedder
    return svc


def _state(svc) -> tuple:
    files = sorted((p.name, p.read_bytes()) for p in svc.seeds_dir.rglob("*"))
    return files, (svc.index_dir / store.MANIFEST).read_text()


def test_uploads_refuse_lookalikes_and_duplicates_naming_the_holder(service):
    seed = next(SEEDS.glob("*.txt"))
    body = seed.read_bytes()
    fullwidth = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() and c.isascii() else c for c in seed.stem) + ".txt"
    arabic_digits = seed.stem.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")) + ".txt"
    before = _state(service)
    assert "already has this file" in service.add_files([(fullwidth, body)], replace=False)
    message = service.add_files([(arabic_digits, body)], replace=False)
    assert message.startswith("refused:") and f"already in the corpus as {seed.name}" in message
    four = [(f"copy-{i}.txt", "نسخة\nنص واحد في أربعة ملفات.".encode()) for i in range(4)]
    message = service.add_files(four, replace=False)
    assert "holds the same article as copy-0.txt" in message and "nothing was added" in message
    dup_ids = '{"id": "x", "text": "نص."}\n{"id": "x", "text": "نص آخر."}\n'.encode()
    assert "duplicate id 'x' (first on line 1)" in service.add_files([("ids.jsonl", dup_ids)], replace=False)
    assert _state(service) == before


def test_an_upload_is_all_or_nothing(service, monkeypatch):
    (service.seeds_dir / "link.txt").symlink_to(SEEDS / next(SEEDS.glob("*.txt")).name)
    before = _state(service)
    good = ("good.txt", "خبر جيد\nافتتحت بلدية دوريس حديقة جديدة.".encode())
    message = service.add_files([good, ("link.txt", "عنوان\nنص آخر.".encode())], replace=True)
    assert "symbolic link" in message and "nothing was added" in message
    message = service.add_files([good, ("bad.txt", "عنوان\nنص".encode("cp1256"))], replace=False)
    assert "not UTF-8" in message and "nothing was added" in message
    assert _state(service) == before

    def fail(*_a, **_k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(commit, "_save_faiss", fail)  # the commit fails after the files were moved in
    message = service.add_files([good], replace=False)
    assert message.startswith("refused: indexing failed") and "unchanged" in message
    assert _state(service) == before


def test_upload_bounds_and_read_only(service, settings):
    from dataclasses import replace

    from ui.service import ChatService

    service.settings = replace(settings, max_upload_articles=5)
    message = service.add_files([("many.jsonl", bulk(6))], replace=False)
    assert "6 articles is over the 5-article limit" in message
    read_only = ChatService(service.index_dir, service.seeds_dir, settings, read_only=True)
    before = _state(service)
    assert read_only.add_files([("new.txt", "عنوان\nنص جديد.".encode())], replace=False).startswith("refused:")
    assert _state(service) == before


def test_kill_during_upload_embedding_changes_nothing_and_the_upload_then_succeeds(built, settings, embedder):
    from ui.app import ensure_ready
    from ui.service import ChatService

    seeds, index = built
    payload = index.parent / "upload.jsonl"
    payload.write_bytes(bulk(60))
    script = (
        "import sys; from pathlib import Path; from rag.settings import Settings; from ui.service import ChatService\n"
        "s = Settings.from_env(batch_size=4)\n"
        "svc = ChatService(Path(sys.argv[1]), Path(sys.argv[2]), s)\n"
        "print(svc.add_files([('bulk.jsonl', Path(sys.argv[3]).read_bytes())], False))\n"
    )
    env = {**os.environ, "RAG_MODEL": str(settings.model)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(index), str(seeds), str(payload)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_while_embedding(proc, index)

    assert not (seeds / "bulk.jsonl").exists() and not list(seeds.glob(".upload-*"))
    ensure_ready(settings, index, seeds)  # the next start: nothing to repair, nothing half-added
    svc = ChatService(index, seeds, settings)
    svc.index._embedder = embedder
    assert len(svc.documents()) == 1
    message = svc.add_files([("bulk.jsonl", payload.read_bytes())], replace=False)
    assert "added: bulk.jsonl (60 articles)" in message, message
    reused = int(message.split(" embedded, ")[1].split(" reused")[0])
    assert reused >= 8  # what was embedded before the kill is not embedded again
    assert len(svc.documents()) == 61


def test_asks_during_an_upload_build_all_succeed_with_valid_quotes(service):
    import threading

    result: dict[str, str] = {}
    builder = threading.Thread(target=lambda: result.update(msg=service.add_files([("b.jsonl", bulk(40))], False)))
    builder.start()
    questions = ["why did Albania cut ties?", QUESTION_AR, "ماذا قال مسؤول وزارة النفط الإيرانية؟"] * 10
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(service.ask, questions))
    builder.join(timeout=300)
    assert "added: b.jsonl (40 articles)" in result["msg"], result
    for a in answers:
        for c in a.citations:
            assert service.index.article_text(c.doc_id)[c.start : c.end] == c.quote
    assert all(a.found for a in answers[:2])


# -- the server off loopback ----------------------------------------------------------------------------------
def test_serving_off_loopback_needs_auth_or_read_only(capsys, monkeypatch):
    from rag.settings import Settings
    from ui.app import server_auth

    one_line_error(capsys, ["serve", "--host", "0.0.0.0"], "RAG_AUTH=user:password")
    assert server_auth("0.0.0.0", Settings(), read_only=True) is None
    guard = server_auth("0.0.0.0", Settings(auth="ana:s3cret-pass"), read_only=False)
    assert guard("ana", "s3cret-pass") and not guard("ana", "wrong")
    assert server_auth("127.0.0.1", Settings(), read_only=False) is None
    with pytest.raises(ValueError, match="user:password"):
        server_auth("0.0.0.0", Settings(auth="no-colon"), read_only=False)


def test_auth_guards_the_api_and_read_only_has_no_upload(service, settings):
    import httpx
    from gradio_client import Client
    from test_ui import _free_port

    from ui.app import start_app
    from ui.guard import LoginGuard
    from ui.service import ChatService

    app, url = start_app(service, "127.0.0.1", _free_port(), auth=LoginGuard("ana", "s3cret-pass"))
    try:
        for endpoint in ("ask", "add"):
            r = httpx.post(f"{url}/gradio_api/call/{endpoint}", json={"data": ["why did Albania cut ties?"]})
            assert r.status_code in (401, 403), (endpoint, r.status_code)
        data = Client(url, auth=("ana", "s3cret-pass"), verbose=False).predict(QUESTION_AR, api_name="/ask")
        assert data["found"]
    finally:
        app.close()
    ro = ChatService(service.index_dir, service.seeds_dir, settings, read_only=True)
    ro.index._embedder = service.index._embedder
    app, url = start_app(ro, "127.0.0.1", _free_port())
    try:
        config = httpx.get(f"{url}/config").json()
        assert not any(c.get("props", {}).get("elem_id") == "upload" for c in config["components"])
        assert not any(d.get("api_name") == "add" for d in config["dependencies"])
    finally:
        app.close()


# -- what the hostile probe found (issue 23) ---------------------------------------------------------------------
def test_a_read_only_chat_takes_no_raw_upload(service, settings):
    import httpx
    from test_ui import _free_port

    from ui.app import start_app
    from ui.service import ChatService

    ro = ChatService(service.index_dir, service.seeds_dir, settings, read_only=True)
    ro.index._embedder = service.index._embedder
    app, url = start_app(ro, "127.0.0.1", _free_port())
    try:
        r = httpx.post(f"{url}/gradio_api/upload", files={"files": ("x.txt", b"A" * 1000)})
        assert r.status_code == 403 and "read-only" in r.text
    finally:
        app.close()


def test_an_uploads_temp_copies_are_deleted_whatever_the_outcome(service, tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("خبر جيد\nافتتحت بلدية دوريس حديقة جديدة.", encoding="utf-8")
    bad.write_bytes("عنوان\nنص".encode("cp1256"))
    assert service.add_paths([str(bad)], replace=False).startswith("refused:")
    assert service.add_paths([str(good)], replace=False).startswith("added: good.txt")
    assert not good.exists() and not bad.exists()


def test_uploaded_files_get_the_mode_of_the_rest_of_seeds(service):
    plain = service.seeds_dir / "made-here.txt"
    plain.write_text("x", encoding="utf-8")
    assert service.add_files([("uploaded.txt", "عنوان\nنص مرفوع جديد.".encode())], replace=False).startswith("added")
    assert (service.seeds_dir / "uploaded.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


@pytest.mark.parametrize("name", ["hello\u061c.txt", "\u0600news.txt", "a\u06dd.txt", "\u202etxt.md", "a\u200f.txt"])
def test_file_names_with_format_or_direction_characters_are_refused(name):
    from ui.uploads import UploadRejected, check_name

    with pytest.raises(UploadRejected, match="format or direction"):
        check_name(name)
    assert check_name("مقال الرياض (1).txt") == "مقال الرياض (1).txt"  # Arabic letters are welcome


def test_a_bracketed_number_in_an_article_cannot_pass_for_a_marker(tmp_path, settings, embedder):
    import re

    seeds = tmp_path / "seeds"
    seeds.mkdir()
    body = "أعلنت بلدية دوريس [1] افتتاح حديقة جديدة على شاطئ البحر بتكلفة مليوني يورو [2]."
    (seeds / "park.txt").write_text("حديقة دوريس\n" + body, encoding="utf-8")
    build_index(seeds, tmp_path / "index", settings=settings, embedder=embedder, progress=False)
    a = rag.answer("ما الذي افتتحته بلدية دوريس؟", index_dir=tmp_path / "index")
    assert a.found and "[1]" in a.citations[0].quote  # the citation keeps the article's characters
    markers = [int(n) for n in re.findall(r"\[(\d+)\]", a.text)]
    assert markers == [c.n for c in a.citations] and "دوريس (1)" in a.text


def test_rest_calls_may_leave_out_the_history_and_a_refusal_is_one_log_line(service, capfd):
    import httpx
    from test_ui import _free_port

    from ui.app import start_app

    app, url = start_app(service, "127.0.0.1", _free_port())
    try:

        def call(data: list) -> str:
            event = httpx.post(f"{url}/gradio_api/call/ask", json={"data": data}).json()["event_id"]
            return httpx.get(f"{url}/gradio_api/call/ask/{event}", timeout=120).text

        assert '"found": true' in call([QUESTION_AR])
        capfd.readouterr()
        refused = call([QUESTION_AR, "not a list"])
        assert "event: error" in refused and "history must be a list" in refused
        parts = [{"role": "user", "content": [{"type": "text", "text": "what about Albania?"}]}]
        assert '"found": true' in call([QUESTION_AR, parts])  # OpenAI content parts in a history
    finally:
        app.close()
    assert "Traceback" not in capfd.readouterr().err


def test_logins_are_throttled_and_short_passwords_refused():
    import time

    from rag.settings import Settings
    from ui.guard import LoginGuard, server_auth

    with pytest.raises(ValueError, match="at least 8 characters"):
        server_auth("0.0.0.0", Settings(auth="ana:x"), read_only=False)
    guard = LoginGuard("ana", "right-password", attempts=5, window=60, lockout=0.5)
    assert [guard("ana", f"guess{i}") for i in range(5)] == [False] * 5
    assert not guard("ana", "right-password")  # locked out: even the right password waits
    time.sleep(0.6)
    assert guard("ana", "right-password")


def test_a_damaged_page_in_a_stored_text_names_the_real_fix(built, capsys):
    import sqlite3

    _seeds, index = built
    db = sqlite3.connect(index / store.DB_NAME)
    (blob,) = db.execute("SELECT text FROM documents").fetchone()
    db.execute("UPDATE documents SET text = ?", (bytes(blob[:10]) + bytes(len(blob) - 10),))
    db.commit()
    db.close()
    line = one_line_error(capsys, ["ask", "why did Albania cut ties?", "--index", str(index)], "cannot repair it")
    assert f"mv {index} {index}.damaged" in line


def test_a_folder_in_place_of_the_vector_file_is_repaired_with_status_0_and_warm(built, capsys, settings):
    from rag.store import is_warm

    seeds, index = built
    path = _faiss_file(index)
    path.unlink()
    path.mkdir()
    assert main(["index", "--seeds", str(seeds), "--index", str(index), "--quiet"]) == 0
    assert "rebuilt from stored vectors" in capsys.readouterr().err
    generation = json.loads((index / store.MANIFEST).read_text())["generation"]
    assert not path.exists() and is_warm(index, generation)


def test_rag_index_removes_what_an_interrupted_upload_left(built, capsys):
    seeds, index = built
    stale, live = seeds / ".upload-stale", seeds / ".upload-live"
    stale.write_text("half an upload", encoding="utf-8")
    live.write_text("an upload being written now", encoding="utf-8")
    os.utime(stale, (0, 0))
    assert main(["index", "--seeds", str(seeds), "--index", str(index), "--quiet"]) == 0
    assert not stale.exists() and live.exists()
    assert "removed 1 temporary file(s)" in capsys.readouterr().err
