"""The web chat: ask in English or Arabic, read cited Arabic sources, add articles to the corpus."""

from __future__ import annotations

import html
import logging
import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import gradio as gr

from rag.answering import Answer
from rag.building import build_index as build_and_warm
from rag.crosslingual import lexicon_status
from rag.model import convert
from rag.settings import Settings
from rag.timeq import DocFilter
from ui.guard import block_uploads, is_loopback, server_auth
from ui.openai_api import mount_api
from ui.render import as_text, chat_history, searched_note, shown_answer, sources_html
from ui.service import ChatService

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


def make_respond(service: ChatService):
    """The chat's handler: the question and the conversation in, the growing answer and its sources out."""

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

    return respond


def make_api(service: ChatService):
    """The named endpoints `/ask` and `/ask_stream` (also over REST with only a question)."""

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

    return ask_api, ask_stream


def chat_tab(service: ChatService) -> None:
    """The conversation, the question box and examples, the filters, and the Sources panel."""
    respond = make_respond(service)
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
                outlets = gr.Dropdown(choices=service.outlets(), multiselect=True, label="outlets", elem_id="outlets")
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


def corpus_tab(service: ChatService) -> None:
    """The indexed articles and, unless read-only, the upload form."""

    def add(files: list[str] | None, replace: bool, progress=gr.Progress(track_tqdm=True)):  # noqa: B008
        return service.add_paths(files or [], bool(replace)), service.documents()

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


def create_app(service: ChatService) -> gr.Blocks:
    """The web chat: a header with the corpus's dates, the Chat and Corpus tabs, and the named API endpoints."""
    ask_api, ask_stream = make_api(service)
    # Gradio keeps uploaded files in its temp folder: those older than an hour go, checked every ten minutes
    with ChatBlocks(title="Arabic news QA", analytics_enabled=False, delete_cache=(600, 3600)) as app:
        gr.Markdown("## Ask the Arabic news articles\nQuestions in English or Arabic; answers quote their sources.")
        gr.Markdown(service.time_range, elem_id="time-range")
        if (warning := lexicon_status(service.settings.lexicon)) is not None:
            gr.HTML(f'<div class="status-warning" id="lexicon-warning">Note: {html.escape(warning)}</div>')
        with gr.Tab("Chat"):
            chat_tab(service)
        with gr.Tab("Corpus"):
            corpus_tab(service)
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
    # load the model now, not on the first question: read-only, only questions are embedded, so the numpy query
    # encoder does it and torch is never loaded (about 0.4 GB less at 1M chunks); otherwise uploads need torch anyway
    service.index.queries if read_only else service.index.embedder  # noqa: B018
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
