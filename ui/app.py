"""The web chat: ask in English or Arabic, read cited Arabic sources, add articles to the corpus."""

from __future__ import annotations

import html
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr

from rag.answering import Answer
from rag.asking import Asker, small_print
from rag.building import build_index as build_and_warm
from rag.chain import Decision
from rag.crosslingual import lexicon_status
from rag.dates import spell_day
from rag.indexer import build_index
from rag.model import convert
from rag.retrieve import SearchIndex
from rag.settings import Settings
from rag.timeq import DocFilter
from ui.guard import block_uploads, is_loopback, server_auth
from ui.openai_api import mount_api
from ui.uploads import (
    CheckedUpload,
    Corpus,
    UploadRejected,
    check_upload,
    undo_writes,
    write_uploads,
)

EXAMPLES = [
    "why did Albania cut ties?",
    "لماذا قطعت ألبانيا علاقاتها مع إيران؟",
    "Who does Britain say was behind the cyberattack on Albania?",
    "أين يعيش أعضاء منظمة مجاهدي خلق في ألبانيا؟",
]

# Each message and passage takes the direction of its own text (dir="auto"), not one global RTL switch.
HEAD = """
<script>
(() => {
  // Only the message container: dir="auto" ignores descendants that carry a dir of their own.
  const SELECTOR = "#chat .message-content";
  const mark = () => document.querySelectorAll(SELECTOR).forEach((el) => {
    if (!el.hasAttribute("dir")) el.setAttribute("dir", "auto");
  });
  new MutationObserver(mark).observe(document.documentElement, {childList: true, subtree: true});
  // The copy button copies the message as shown (the article's own characters), not the HTML-escaped text the
  // page is given, and without the small print under an answer.
  document.addEventListener("click", (ev) => {
    const button = ev.target.closest && ev.target.closest('#chat button[aria-label="Copy message"]');
    const row = button && button.closest(".message-buttons")?.previousElementSibling;
    const content = row && row.querySelector(".message-content");
    if (!content || !navigator.clipboard) return;
    ev.stopImmediatePropagation();
    ev.preventDefault();
    const shown = content.cloneNode(true);
    shown.querySelectorAll(".searched").forEach((n) => n.remove());
    navigator.clipboard.writeText(shown.innerText.trim());
  }, true);
})();
</script>
"""

log = logging.getLogger(__name__)

CSS = """
:root { --arabic-fonts: "Noto Naskh Arabic", "Noto Sans Arabic", "Amiri", "DejaVu Sans", "Tahoma", sans-serif; }
body, .gradio-container { font-family: "Noto Sans", "DejaVu Sans", var(--arabic-fonts); }
#chat .message-content, #chat .message-content p, #chat .message-content li, .passage, .src-title {
  unicode-bidi: plaintext; text-align: start; }
#chat .message-content { white-space: pre-wrap; }
.passage { font-family: var(--arabic-fonts); line-height: 1.9; font-size: 1.05em; }
.passage mark { background: #fff1a8; color: inherit; padding: 0 2px; border-radius: 3px; }
.source { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 6px 10px; margin-bottom: 8px; }
.source summary { cursor: pointer; font-weight: 600; }
.src-file { color: var(--body-text-color-subdued); font-size: 0.85em; margin: 2px 0 6px; }
.no-sources { color: var(--body-text-color-subdued); }
.status-warning { color: #8a5a00; font-size: 0.9em; }
#chat .searched { color: var(--body-text-color-subdued); font-size: 0.8em; margin-top: 6px; white-space: normal; }
"""


class ChatService:
    """The shared state of a running chat: one loaded index and model, and one build at a time.

    `read_only` refuses every change to the corpus here, in the server, whatever the page shows.
    """

    def __init__(
        self, index_dir: Path, seeds_dir: Path, settings: Settings, read_only: bool = False, embedder=None
    ) -> None:
        self.settings = settings
        self.index_dir = index_dir
        self.seeds_dir = seeds_dir
        self.read_only = read_only
        self.index = SearchIndex(index_dir, settings, embedder=embedder)  # an already loaded model may be shared
        self.asker = Asker(self.index, settings)  # the one path every front end asks through
        self._build_lock = threading.Lock()
        # one upload indexes while at most `max_queued_uploads` wait; more are refused at once
        self._slots = threading.BoundedSemaphore(1 + max(0, settings.max_queued_uploads))

    def ask(self, question: str, history: list[dict] | None = None, where: DocFilter | None = None) -> Answer:
        """Answer a question, reading it in the context of `history` (the messages format, oldest first), among the
        articles `where` admits (all when None)."""
        return self.asker.ask(question, history, where)

    def decide(self, question: str, history: list[dict] | None = None, where: DocFilter | None = None) -> Decision:
        """The decision for a question (see `ask`), for `stream` to compose as the page shows it."""
        return self.asker.decide(question, history, where)

    def stream(self, decision: Decision) -> Iterator[str | Answer]:
        """The answer's text as it grows (nothing unverified), then the Answer (`rag.asking.Asker.stream`)."""
        return self.asker.stream(decision)

    def outlets(self) -> list[str]:
        """The corpus's outlets, for the chat's filter."""
        return sorted(set(self.index.outlets.values()))

    def documents(self) -> list[list]:
        return [
            [d["title"], d["source"], (d["date"] or "")[:10], d["outlet"], d["chunks"], d["added_at"]]
            for d in self.index.documents()
        ]

    def time_range(self) -> str:
        """The corpus's dated span for the page header: "Articles from 21 July 2015 to 11 August 2015 (3 undated)"."""
        r = self.index.date_range
        undated = f" ({r.undated} undated)" if r.undated else ""
        return f"Articles {r.describe()}{undated}." if r.first else "The articles carry no dates."

    def add_files(self, files: list[tuple[str, bytes]], replace: bool) -> str:
        """Add an upload to the corpus, all or nothing: every file is checked, the articles are embedded from memory,
        and only then are the files moved into seeds/ and the index committed. Returns the lines to show."""
        if self.read_only:
            return "refused: this chat is read-only (started with --read-only); the corpus is unchanged"
        if not files:
            return "no files to add"
        if not self._slots.acquire(blocking=False):
            return "refused: other uploads are already waiting to be indexed; try again in a minute"
        try:
            with self._build_lock:
                return self._add(files, replace)
        finally:
            self._slots.release()

    def add_paths(self, paths: list[str], replace: bool) -> str:
        """Add the files Gradio received into its temp folder (see `add_files`), then delete those copies, whatever
        the outcome: an upload leaves nothing behind in the temp folder."""
        if not paths:
            return "Choose one or more .txt, .md or .jsonl files first."
        try:
            return self.add_files([(Path(f).name, Path(f).read_bytes()) for f in paths], replace)
        except Exception as exc:  # one line in the status box, never a bare "Error"
            return f"refused: {exc}; the corpus is unchanged"
        finally:
            for f in paths:
                Path(f).unlink(missing_ok=True)

    def _add(self, files: list[tuple[str, bytes]], replace: bool) -> str:
        self.index.refresh()
        uploads, refused = self._check(files, replace)
        if refused:
            return "\n".join([*refused, "nothing was added: fix or remove the refused file(s) and upload again"])
        written: list = []
        try:
            stats = build_index(
                self.seeds_dir,
                self.index_dir,
                settings=self.settings,
                embedder=self.index.embedder,
                progress=True,
                pending=[a for u in uploads for a in u.articles],
                before_commit=lambda: written.extend(write_uploads(uploads, self.seeds_dir)),
            )  # the store's build: the refresh below loads the new generation once, and warms it
        except Exception as exc:  # any failure undoes the upload, and says so in one line
            undo_writes(written)
            return f"refused: indexing failed ({exc}); the corpus is unchanged"
        self.index.refresh()
        self.index.warm()
        lines = []
        for upload in uploads:
            verb = "replaced" if upload.replaces else "added"
            n = len(upload.articles)
            lines.append(f"{verb}: {upload.name} ({n} article{'s' * (n != 1)})")
        lines.append(f"index: {stats.summary()}")
        return "\n".join(lines)

    def _check(self, files: list[tuple[str, bytes]], replace: bool) -> tuple[list[CheckedUpload], list[str]]:
        """Check every file against the index and against the other files of the same upload."""
        corpus = Corpus.of(self.index.content_sources())
        uploads: list[CheckedUpload] = []
        refused: list[str] = []
        names: set[str] = set()
        holders: dict[str, str] = {}
        total = 0
        for name, data in files:
            try:
                upload = check_upload(
                    name,
                    data,
                    self.seeds_dir,
                    self.settings.max_upload_bytes,
                    replace,
                    corpus,
                    self.settings.max_upload_articles,
                )
                if upload.name in names:
                    raise UploadRejected(f"{upload.name}: two files of this upload have this name")
                for a in upload.articles:
                    if a.content_hash in holders:
                        raise UploadRejected(f"{upload.name}: holds the same article as {holders[a.content_hash]}")
                    holders[a.content_hash] = upload.name
                total += len(upload.articles)
                if total > self.settings.max_upload_articles:
                    raise UploadRejected(
                        f"this upload holds more than {self.settings.max_upload_articles:,} articles "
                        "(RAG_MAX_UPLOAD_ARTICLES); split it"
                    )
            except UploadRejected as exc:
                refused.append(f"refused: {exc}")
                continue
            names.add(upload.name)
            uploads.append(upload)
        return uploads, refused


def sources_html(answer: Answer) -> str:
    """The citations of one answer: title, file, and the passage with the quote highlighted."""
    if not answer.found:
        why = f"<br>{html.escape(answer.missing)}" if answer.missing else ""
        related = "".join(
            f'<li dir="auto">{html.escape(r["title"])} <span class="src-file">'
            f"({html.escape(r['date'][:10] or 'date unknown')} · {html.escape(r['source'])})</span></li>"
            for r in answer.related
        )
        reading = f'<div class="related">Related reading (not an answer):<ul>{related}</ul></div>' if related else ""
        return (
            '<div class="no-sources" dir="auto">No sources: the indexed articles do not cover this question.'
            f"{why}</div>{reading}"
        )
    blocks = []
    for c in answer.citations:
        at = c.passage.find(c.quote)
        before, after = (c.passage[:at], c.passage[at + len(c.quote) :]) if at >= 0 else ("", "")
        blocks.append(
            f'<details class="source" open><summary><span class="src-title" dir="auto">[{c.n}] '
            f"{html.escape(c.title)}</span></summary>"
            f'<div class="src-file">{html.escape(c.date[:10] or "date unknown")} · '
            f"{html.escape(c.outlet) + ' · ' if c.outlet not in ('', c.source) else ''}{html.escape(c.source)} · "
            f"characters {c.start}–{c.end} · score {c.score:.2f}{also_in(c)}</div>{resolved_days(c)}"
            f'<div class="passage" dir="auto">{html.escape(before)}<mark>{html.escape(c.quote)}</mark>'
            f"{html.escape(after)}</div></details>"
        )
    return "\n".join(blocks)


def resolved_days(c) -> str:
    """The quote's relative days with the dates they stand for ("اليوم (الاثنين) = Monday 20 July 2015"), escaped."""
    if not c.dates:
        return ""
    items = " · ".join(f"{html.escape(d['text'])} = {html.escape(spell_day(d['date']))}" for d in c.dates)
    return f'<div class="src-file src-dates" dir="auto">{items}</div>'


def also_in(c) -> str:
    """· also in N other articles (syndicated copies of the same sentence), escaped."""
    return f" · also in {len(c.also_in)} other article(s)" if c.also_in else ""


def as_text(text: str) -> str:
    """A chat message shown as plain text: the Chatbot renders no Markdown here, and every character of
    article-derived text is HTML-escaped, so a quote can never become markup, a link or a fetched image."""
    return html.escape(text, quote=True)


_QUOTED = re.compile(r"«([^«»<>]*)»")


def shown_answer(text: str) -> str:
    """An answer as `as_text` shows it, each «quoted» span isolated for the bidi algorithm (<bdi>), so Arabic words
    quoted in an English line ("24 hours — «24 ساعة» [1]") keep their order and their marker stays outside."""
    return _QUOTED.sub(r"«<bdi>\1</bdi>»", as_text(text))


def chat_history(messages: list[dict] | None) -> list[dict]:
    """The Chatbot's messages as plain {"role", "content"} text: its content blocks joined, escaping undone, and the
    small print this app adds under an answer left out."""
    out = []
    for m in messages or []:
        content = m.get("content")
        if isinstance(content, list):
            content = " ".join(b.get("text", "") for b in content if isinstance(b, dict))
        if isinstance(content, str) and m.get("role") in ("user", "assistant"):
            shown = content.split(SEARCHED_MARK, 1)[0].replace("<bdi>", "").replace("</bdi>", "")  # ours, not text
            content = html.unescape(shown)
            out.append({"role": m["role"], "content": content})
    return out


SEARCHED_MARK = '<div class="searched"'


def searched_note(answer: Answer) -> str:
    """The small print under an answer (`rag.asking.small_print`), escaped, in its own block."""
    lines = small_print(answer)
    if not lines:
        return ""
    return f'{SEARCHED_MARK} dir="auto">' + "<br>".join(as_text(x) for x in lines) + "</div>"


class ChatBlocks(gr.Blocks):
    """Blocks whose API functions may be called over REST with only their first arguments (`/gradio_api/call/ask`
    with just a question): the rest take their defaults (None), as they do from gradio_client."""

    OPTIONAL_TAIL = ("ask_api", "ask_stream")

    def validate_inputs(self, block_fn, inputs: list) -> None:
        if block_fn.name in self.OPTIONAL_TAIL and 0 < len(inputs) < len(block_fn.inputs):
            inputs.extend([None] * (len(block_fn.inputs) - len(inputs)))
        super().validate_inputs(block_fn, inputs)


def refused(exc: Exception) -> gr.Error:
    """A bad request's one-line error for the client, logged as one line (not a traceback) on the server."""
    log.info("refused request: %s", exc)
    return gr.Error(str(exc), print_exception=False)


def create_app(service: ChatService) -> gr.Blocks:
    def respond(question: str, history: list[dict], since: str = "", until: str = "", outlets=None):
        question = (question or "").strip()
        history = list(history or [])
        context = chat_history(history)
        if not question:
            gr.Warning("Type a question first, in English or Arabic.")
            yield history, gr.update(), question
            return
        history += [{"role": "user", "content": as_text(question)}, {"role": "assistant", "content": "…"}]
        yield history, '<div class="no-sources">Searching the articles…</div>', ""
        try:
            decision = service.decide(question, context, DocFilter.of(since, until, outlets))
        except Exception as exc:  # a user-facing one-liner, never a traceback in the chat
            history[-1]["content"] = as_text(f"Error: {exc}")
            yield history, "", ""
            return
        for item in service.stream(decision):  # the text as it grows, then the Answer that replaces it
            if isinstance(item, Answer):
                answer = item
            else:
                history[-1]["content"] = shown_answer(item)
                yield history, gr.update(), ""
        history[-1]["content"] = shown_answer(answer.text) + searched_note(answer)
        yield history, sources_html(answer), ""

    def ask_api(
        question: str,
        history: list[dict] | None = None,
        since: str | None = None,
        until: str | None = None,
        outlets: list[str] | None = None,
    ) -> dict:
        """Answer a question, optionally after a conversation (a list of {"role": "user" | "assistant",
        "content": str}, oldest first) and among articles dated since/until (YYYY-MM-DD) or of some outlets;
        returns the same JSON as `rag ask --json`, with `searched_question`."""
        try:
            return service.ask(question, history, DocFilter.of(since, until, outlets)).to_dict()
        except ValueError as exc:
            raise refused(exc) from None

    def ask_stream(question: str, history: list[dict] | None = None) -> Iterator[dict]:
        """Like /ask, streamed: {"text": ..., "done": false} as the answer grows (an LLM's markers held back until
        complete), then the full answer with "done": true."""
        try:
            decision = service.decide(question, history)
        except ValueError as exc:
            raise refused(exc) from None
        for item in service.stream(decision):
            yield {**item.to_dict(), "done": True} if isinstance(item, Answer) else {"text": item, "done": False}

    def add(files: list[str] | None, replace: bool, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        return service.add_paths(files or [], bool(replace)), service.documents()

    # Gradio keeps uploaded files in its temp folder: those older than an hour go, checked every ten minutes
    with ChatBlocks(title="Arabic news QA", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown("## Ask the Arabic news articles\nQuestions in English or Arabic; answers quote their sources.")
        gr.Markdown(service.time_range, elem_id="time-range")
        if (warning := lexicon_status(service.settings.lexicon)) is not None:
            gr.HTML(f'<div class="status-warning" id="lexicon-warning">Note: {html.escape(warning)}</div>')
        with gr.Tab("Chat"):
            with gr.Row():
                with gr.Column(scale=3):
                    chat = gr.Chatbot(
                        elem_id="chat",
                        height=480,
                        label="Conversation",
                        buttons=["copy"],
                        render_markdown=False,  # answers quote articles: plain text, escaped by as_text()
                        latex_delimiters=[],
                    )
                    with gr.Row():
                        box = gr.Textbox(
                            elem_id="question",
                            placeholder="Ask a question… / اطرح سؤالاً…",
                            show_label=False,
                            scale=5,
                            autofocus=True,
                            rtl=False,
                        )
                        send = gr.Button("Ask", variant="primary", elem_id="ask", scale=1)
                    with gr.Row(elem_id="examples"):
                        example_buttons = [gr.Button(q, size="sm") for q in EXAMPLES]
                    with gr.Accordion("Narrow the search: dates and outlets", open=False, elem_id="filters"):
                        with gr.Row():
                            since = gr.Textbox(label="since (YYYY-MM-DD)", max_lines=1, elem_id="since")
                            until = gr.Textbox(label="until (YYYY-MM-DD)", max_lines=1, elem_id="until")
                        outlets = gr.Dropdown(
                            choices=service.outlets(), multiselect=True, label="outlets", elem_id="outlets"
                        )
                with gr.Column(scale=2):
                    gr.Markdown("### Sources")
                    sources = gr.HTML(
                        '<div class="no-sources">Sources of the latest answer appear here.</div>', elem_id="sources"
                    )
            inputs = [box, chat, since, until, outlets]
            for trigger in (box.submit, send.click):
                trigger(respond, inputs, [chat, sources, box], api_visibility="private")
            for b, q in zip(example_buttons, EXAMPLES, strict=True):
                b.click(lambda q=q: q, None, box, api_visibility="private").then(
                    respond, inputs, [chat, sources, box], api_visibility="private"
                )
        with gr.Tab("Corpus"):
            table = gr.Dataframe(
                value=service.documents,
                headers=["title", "file", "date", "outlet", "chunks", "added"],
                interactive=False,
                elem_id="corpus",
                label="Indexed articles",
            )
            if service.read_only:  # no upload widgets and no upload endpoint at all
                gr.Markdown("This chat is read-only: adding articles is turned off.", elem_id="read-only")
            else:
                files = gr.File(
                    file_count="multiple", file_types=[".txt", ".md", ".jsonl"], label="Add articles", elem_id="upload"
                )
                replace = gr.Checkbox(False, label="replace files with the same name")
                add_btn = gr.Button("Add to corpus and index", variant="primary")
                status = gr.Textbox(label="Result", lines=4, interactive=False, elem_id="upload-status")
                add_btn.click(add, [files, replace], [status, table], api_visibility="private")
        gr.api(ask_api, api_name="ask")
        gr.api(ask_stream, api_name="ask_stream")
    return app


def ensure_ready(settings: Settings, index_dir: Path, seeds_dir: Path, read_only: bool = False) -> None:
    """Build what is missing: the model folder; then update the index of seeds/ incrementally (a read-only chat
    writes nothing, and only needs an index to exist)."""
    model = Path(settings.model)
    if model.is_absolute() and not (model / "modules.json").exists():  # a local folder, not a hub id
        convert(model)
    if read_only:
        return
    # Every start brings the index in step with seeds/ (articles that landed while the chat was down, or an upload
    # a crash interrupted); with nothing to do this takes a fraction of a second and loads no model.
    print(f"bringing the index at {index_dir} in step with {seeds_dir} …", flush=True)
    stats = build_and_warm(seeds_dir, index_dir, settings=settings)
    print(f"index: {stats.summary()}", flush=True)


def start_app(service: ChatService, host: str, port: int, auth=None) -> tuple[gr.Blocks, str]:
    """Build and start the app for `service` without blocking; returns it and its URL."""
    app = create_app(service)
    app.queue(default_concurrency_limit=4, max_size=256)
    app.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        auth=auth,
        theme=gr.themes.Soft(
            font=["Noto Sans", "DejaVu Sans", "Noto Naskh Arabic", "Tahoma", "sans-serif"],
            font_mono=["DejaVu Sans Mono", "monospace"],
        ),
        css=CSS,
        head=HEAD,
        footer_links=["api"],
        max_file_size=service.settings.max_upload_bytes * 5,
    )
    if service.read_only:
        block_uploads(app.server_app)
    # the OpenAI-compatible API and MCP, same process and port (ui/openai_api.py)
    mount_api(app.server_app, service, host, port, service.settings.api_key, service.read_only, is_loopback(host))
    return app, f"http://{host}:{port}"


def launch(
    host: str | None = None,
    port: int | None = None,
    index_dir: str | Path | None = None,
    seeds_dir: str | Path | None = None,
    block: bool = True,
    read_only: bool = False,
    llm_url: str | None = None,
    llm_model: str | None = None,
) -> tuple[gr.Blocks, str]:
    """Start the chat, building what is missing first; binds to 127.0.0.1 unless told otherwise.

    Off loopback it needs RAG_AUTH (a login) or `read_only` (no uploads); otherwise it refuses to start.
    """
    settings = Settings.from_env(llm_url=llm_url, llm_model=llm_model)
    host = host or settings.host
    auth = server_auth(host, settings, read_only)  # before any work
    index = Path(index_dir) if index_dir else settings.index_dir
    seeds = Path(seeds_dir) if seeds_dir else settings.seeds_dir
    ensure_ready(settings, index, seeds, read_only)
    service = ChatService(index, seeds, settings, read_only=read_only)
    service.index.embedder  # noqa: B018 - load the model now, not on the first question
    service.index.lexicon  # noqa: B018 - and the lexicon (parsed once, then cached as JSON)
    app, url = start_app(service, host, port or settings.port, auth)
    llm = f" (answers by {settings.llm_model} at {settings.llm_url}, verified)" if settings.llm_url else ""
    print(f"chat running at {url}{' (read-only)' * read_only}{llm} (Ctrl+C to stop)", flush=True)
    if block:
        try:
            app.block_thread()
        except KeyboardInterrupt:
            app.close()
    return app, url


def serve(
    host: str | None = None,
    port: int | None = None,
    index_dir: str | Path | None = None,
    seeds_dir: str | Path | None = None,
    read_only: bool = False,
    llm_url: str | None = None,
    llm_model: str | None = None,
) -> None:
    launch(host, port, index_dir, seeds_dir, block=True, read_only=read_only, llm_url=llm_url, llm_model=llm_model)
