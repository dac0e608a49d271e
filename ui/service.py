"""The chat's shared state: one loaded index and its ask service, the corpus it shows, and uploads checked, embedded
and committed all or nothing, one build at a time."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

from rag.answering import Answer
from rag.asking import Asker
from rag.chain import Decision
from rag.indexer import build_index
from rag.retrieve import SearchIndex
from rag.settings import Settings
from rag.timeq import DocFilter
from ui.uploads import (
    CheckedUpload,
    Corpus,
    UploadRejected,
    check_upload,
    undo_writes,
    write_uploads,
)


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
