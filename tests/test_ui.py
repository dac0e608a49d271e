"""The web chat, launched for real: /ask over gradio_client, concurrent users, uploads, and a real browser."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import ALBANIA_REASON, ANSWER_KEYS, ROOT, launch_chat

from rag.indexer import build_index
from rag.store import MANIFEST

ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MUSEUM = "خبر ثقافي\nافتتحت بلدية تيرانا متحفا جديدا للفن الحديث يضم ثلاثمئة لوحة لفنانين ألبان.\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def running(tmp_path_factory, seeds_copy_module, settings, embedder):
    app, url, service = launch_chat(tmp_path_factory, settings, embedder, seeds_copy_module)
    yield service, url
    app.close()


@pytest.fixture(scope="module")
def seeds_copy_module(tmp_path_factory):
    import shutil

    dest = tmp_path_factory.mktemp("ui-seeds") / "seeds"
    shutil.copytree(ROOT / "seeds", dest)
    return dest


@pytest.fixture(scope="module")
def client(running):
    from gradio_client import Client

    return Client(running[1], verbose=False)


def test_app_binds_to_loopback_by_default(seed_index, monkeypatch):
    """Started with no host, the chat listens on 127.0.0.1 and on no other address of the machine."""
    from ui.app import launch

    monkeypatch.delenv("RAG_HOST", raising=False)
    port = _free_port()
    app, url = launch(port=port, index_dir=seed_index, seeds_dir=ROOT / "seeds", block=False, read_only=True)
    try:
        assert url == f"http://127.0.0.1:{port}"
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # the address others reach this machine at
            probe.connect(("10.255.255.255", 1))  # UDP: nothing is sent
            outside = probe.getsockname()[0]
        if not outside.startswith("127."):
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=5).close()
    finally:
        app.close()


@pytest.mark.parametrize("question", ["why did Albania cut ties?", "لماذا قطعت ألبانيا علاقاتها مع إيران؟"])
def test_ask_endpoint_returns_cited_answer(client, question):
    data = client.predict(question, api_name="/ask")
    assert set(data) == ANSWER_KEYS
    assert data["composer"] == "extractive" and data["notice"] == ""
    assert data["found"] is True
    assert any(ALBANIA_REASON in c["quote"] for c in data["citations"])


def test_ask_endpoint_refuses_unrelated_question(client):
    data = client.predict("Who won the 2018 FIFA World Cup final?", api_name="/ask")
    assert data["found"] is False and data["citations"] == []


def test_ask_endpoint_reads_a_follow_up_in_its_history(client):
    history = [
        {"role": "user", "content": "why did Albania cut ties?"},
        {"role": "assistant", "content": "…"},
    ]
    data = client.predict("how long were its diplomats given to leave?", history, api_name="/ask")
    assert data["found"] and any("24 ساعة" in c["quote"] for c in data["citations"])
    assert "Albania" in data["searched_question"]
    alone = client.predict("why did Albania cut ties?", api_name="/ask")  # history is optional
    assert alone["searched_question"] == "why did Albania cut ties?"


def test_twenty_concurrent_calls_are_all_answered(client):
    questions = ["why did Albania cut ties?", "لماذا قطعت ألبانيا علاقاتها مع إيران؟"] * 10
    with ThreadPoolExecutor(max_workers=20) as pool:
        jobs = [pool.submit(client.predict, q, api_name="/ask") for q in questions]
        results = [j.result(timeout=240) for j in jobs]
    assert len(results) == 20
    for data in results:
        assert data["found"] and any(ALBANIA_REASON in c["quote"] for c in data["citations"])


def _state(seeds: Path, index: Path) -> tuple:
    files = sorted((p.relative_to(seeds).as_posix(), p.read_bytes()) for p in seeds.rglob("*") if p.is_file())
    return files, (index / MANIFEST).read_text()


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("latin1.txt", "عنوان\nنص".encode("cp1256"), "not UTF-8"),
        ("big.txt", b"title\n" + b"x" * 2_100_000, "limit"),
        ("../../x.txt", "عنوان\nنص المقال.".encode(), "folders"),
        ("..\\x.txt", "عنوان\nنص المقال.".encode(), "folders"),
        (".hidden.txt", "عنوان\nنص المقال.".encode(), "start with"),
        ("notes.exe", b"MZ", "only .txt"),
        ("000_7ff0f6d648445017.txt", "عنوان آخر\nنص مختلف.".encode(), "already in the corpus"),
    ],
)
def test_bad_upload_is_refused_and_changes_nothing(running, name, data, reason):
    service, _ = running
    before = _state(service.seeds_dir, service.index_dir)
    message = service.add_files([(name, data)], replace=False)
    assert message.startswith("refused:") and reason in message
    assert _state(service.seeds_dir, service.index_dir) == before
    assert not (service.seeds_dir.parent.parent / "x.txt").exists()


def test_valid_upload_is_answerable_in_the_same_session(running, client):
    service, _ = running
    message = service.add_files([("museum.txt", MUSEUM.encode())], replace=False)
    assert "added: museum.txt" in message, message
    data = client.predict("ماذا افتتحت بلدية تيرانا؟", api_name="/ask")
    assert data["found"] and any("متحفا جديدا" in c["quote"] for c in data["citations"])
    rows = {row[1]: row for row in service.documents()}
    # the Corpus tab's columns: title, file, date, outlet, chunks, added
    assert rows["museum.txt"][:4] == ["خبر ثقافي", "museum.txt", "", "museum.txt"] and rows["museum.txt"][4] >= 1


def _browser():
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "Debian's chromium is missing: `make test` installs it (apt-get install chromium)"
    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=BROWSER_ARGS)
    return pw, browser


@pytest.mark.browser
def test_browser_chat_shows_answer_citation_and_rtl_source(running):
    _, url = running
    pw, browser = _browser()
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(url)
        page.fill("#question textarea", "why did Albania cut ties?")
        page.click("#ask")
        page.wait_for_selector("#sources .passage", timeout=120_000)
        bot = page.locator("#chat [data-testid=bot]").last
        assert "[1]" in bot.inner_text()
        passage = page.locator("#sources .passage").first
        assert passage.is_visible() and ("ألبانيا" in passage.inner_text() or "الألبانية" in passage.inner_text())
        assert page.locator("#sources mark").first.is_visible()
        rtl = passage.evaluate("e => getComputedStyle(e).direction")
        user = page.locator("#chat [data-testid=user] .message-content").last
        ltr = user.evaluate("e => getComputedStyle(e).direction")
        bot_dir = page.locator("#chat [data-testid=bot] .message-content").last.evaluate(
            "e => getComputedStyle(e).direction"
        )
        assert (rtl, ltr, bot_dir) == ("rtl", "ltr", "rtl")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat.png"), full_page=True)

        # A follow-up, read in the context of the first question; the searched question shows in small print.
        page.fill("#question textarea", "how long were its diplomats given to leave?")
        page.click("#ask")
        page.wait_for_selector("#chat .searched", timeout=120_000)
        assert "24 ساعة" in page.locator("#chat [data-testid=bot]").last.inner_text()
        assert "Albania" in page.locator("#chat .searched").last.inner_text()
        page.screenshot(path=str(ARTIFACTS / "chat-follow-up.png"), full_page=True)

        # The trash button starts a new conversation: the same follow-up then stands alone.
        page.locator("#chat button[aria-label='Clear']").first.click()
        page.wait_for_function("() => !document.querySelector('#chat [data-testid=bot]')", timeout=30_000)
    finally:
        browser.close()
        pw.stop()


@pytest.mark.browser
def test_browser_example_and_upload_flow(running, tmp_path):
    service, url = running
    pw, browser = _browser()
    try:
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        page.goto(url)
        page.get_by_role("button", name="لماذا قطعت ألبانيا علاقاتها مع إيران؟").click()
        page.wait_for_selector("#sources .passage", timeout=120_000)
        assert "[1]" in page.locator("#chat [data-testid=bot]").last.inner_text()

        upload = tmp_path / "festival.txt"
        upload.write_text("مهرجان\nأقيم في دوريس مهرجان للموسيقى الشعبية استمر خمسة أيام.\n", encoding="utf-8")
        page.get_by_role("tab", name="Corpus").click()
        page.locator("#upload input[type=file]").set_input_files(str(upload))
        page.wait_for_timeout(1500)
        page.get_by_role("button", name="Add to corpus and index").click()
        page.wait_for_function(
            "() => (document.querySelector('#upload-status textarea')?.value || '').includes('festival.txt')",
            timeout=120_000,
        )
        assert "added: festival.txt" in page.locator("#upload-status textarea").input_value()
        assert (service.seeds_dir / "festival.txt").exists()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "corpus.png"), full_page=True)
    finally:
        browser.close()
        pw.stop()


# Article text that is also markup: each line must show as the characters it is, never as an element or a request.
HOSTILE = (
    "مهرجان الفراولة في دوريس\n"
    "افتتحت بلدية دوريس مهرجان الفراولة السنوي "
    '<div id="pwn-div" style="position:fixed;top:0;left:0;width:100vw;height:100vh;background:red">غطاء</div> '
    '<form id="pwn-form"><input id="pwn-pass" type="password"><button>Log in</button></form> بحضور آلاف الزوار\n'
    "وقدم مزارعو الفراولة في دوريس عروضا شعبية "
    '<img id="pwn-img" src="http://tracker.invalid/beacon.gif"> ![beacon](http://tracker.invalid/md.png) '
    "[click](http://tracker.invalid/link) <script>window.pwned = 1</script> طوال أيام المهرجان\n"
)


@pytest.mark.browser
def test_browser_shows_article_markup_as_text(running):
    service, url = running
    message = service.add_files([("hostile.txt", HOSTILE.encode())], replace=False)
    assert "added: hostile.txt" in message, message
    pw, browser = _browser()
    outside: list[str] = []
    try:
        context = browser.new_context(
            viewport={"width": 1300, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
        )
        page = context.new_page()
        origin = url.rstrip("/")

        def guard(route):  # record, and never send, any request that is not for the app itself
            if not route.request.url.startswith(origin):
                outside.append(route.request.url)
                route.abort()
            else:
                route.continue_()

        page.route("**/*", guard)
        page.goto(url)
        questions = ("ماذا افتتحت بلدية دوريس؟", "ماذا قدم مزارعو الفراولة في دوريس؟")
        for turn, question in enumerate(questions, 1):
            earlier = [{"role": "user", "content": q} for q in questions[: turn - 1]]
            expected = service.ask(question, earlier)  # the same conversation the browser has
            assert expected.found and any("<" in c.quote for c in expected.citations), expected.text
            page.fill("#question textarea", question)
            page.click("#ask")
            page.wait_for_function(
                "n => document.querySelectorAll('#chat [data-testid=bot]').length >= n "
                "&& document.querySelector('#sources .passage') "
                "&& !document.querySelector('#sources').innerText.includes('Searching')",
                arg=turn,
                timeout=120_000,
            )
            page.wait_for_timeout(1500)  # let the streamed answer finish
            shown = page.locator("#chat [data-testid=bot] .message-content").last.inner_text()
            for c in expected.citations:
                assert c.quote in shown, (c.quote, shown)  # character for character, tags and all
            # the copy button copies the article's characters, not the escaped text the page was given
            page.locator("#chat button[aria-label='Copy message']").last.click()
            copied = page.evaluate("() => navigator.clipboard.readText()")
            assert all(c.quote in copied for c in expected.citations) and "&lt;" not in copied, copied
        for selector in ("#pwn-div", "#pwn-form", "#pwn-pass", "#pwn-img", "#chat a", "#chat img[src*=tracker]"):
            assert page.locator(selector).count() == 0, selector
        assert page.evaluate("() => window.pwned") is None
        assert outside == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "chat-markup.png"), full_page=True)
    finally:
        browser.close()
        pw.stop()


def test_start_up_indexes_articles_that_landed_while_the_chat_was_down(tmp_path, settings, embedder):
    import shutil

    from rag.retrieve import SearchIndex
    from ui.app import ensure_ready

    seeds, index_dir = tmp_path / "seeds", tmp_path / "index"
    shutil.copytree(ROOT / "seeds", seeds)
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    (seeds / "museum.txt").write_text(MUSEUM, encoding="utf-8")  # arrives while nothing is running
    ensure_ready(settings, index_dir, seeds)
    assert any(d["source"] == "museum.txt" for d in SearchIndex(index_dir, settings, embedder=embedder).documents())


def test_quoted_arabic_in_an_english_line_is_isolated_and_read_back_as_typed():
    from ui.render import chat_history, shown_answer

    line = shown_answer("24 hours — «24 ساعة» [1]\n<b>«x»</b>")
    assert line.startswith("24 hours — «<bdi>24 ساعة</bdi>» [1]")  # the marker stays outside the Arabic run
    assert "&lt;b&gt;" in line  # article text is still escaped
    assert (
        chat_history([{"role": "assistant", "content": line}])[0]["content"] == "24 hours — «24 ساعة» [1]\n<b>«x»</b>"
    )
