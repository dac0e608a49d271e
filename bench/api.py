"""The OpenAI-compatible API's cost over answer(): the same questions asked directly and over loopback HTTP."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import numpy as np

from rag.settings import Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api_overhead(index_dir: Path, seeds_dir: Path, settings: Settings, embedder, questions: list[str]) -> dict:
    """p50 of the ask service alone and of POST /v1/chat/completions (a kept-alive httpx client), each question
    asked once per path with the index's query caches emptied before every call, so neither path is served from
    the other's cache."""
    import httpx

    from ui.app import start_app
    from ui.openai_api import MODEL_ID
    from ui.service import ChatService

    service = ChatService(index_dir, seeds_dir, settings, read_only=True, embedder=embedder)
    app, url = start_app(service, "127.0.0.1", free_port())
    fresh = service.index.forget_questions

    direct, http = [], []
    try:
        with httpx.Client(timeout=120) as client:
            for q in questions[:3]:  # warm both paths
                service.ask(q)
                client.post(
                    f"{url}/v1/chat/completions", json={"model": MODEL_ID, "messages": [{"role": "user", "content": q}]}
                )
            for q in questions:
                fresh()
                t0 = time.perf_counter()
                service.ask(q)
                direct.append((time.perf_counter() - t0) * 1000)
                fresh()
                body = {"model": MODEL_ID, "messages": [{"role": "user", "content": q}]}
                t0 = time.perf_counter()
                r = client.post(f"{url}/v1/chat/completions", json=body)
                http.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
    finally:
        app.close()
    # The overhead is the median of each question's own difference: the difference of the two p50s swung from -2 to
    # +14 ms between runs of the same code, as the machine's load shifted between the two series.
    return {
        "questions": len(questions),
        "answer() p50 (ms)": float(np.percentile(direct, 50)),
        "/v1/chat/completions p50 (ms)": float(np.percentile(http, 50)),
        "API overhead p50 (ms)": float(np.median(np.subtract(http, direct))),
    }
