"""The OpenAI-compatible chat API and the MCP server, over real HTTP and stdio, with the official clients."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import sys
import urllib.request

import httpx
import pytest
from conftest import ALBANIA_REASON, launch_chat

from rag import answer, article_text

MODEL = "rag-arabic-news"
KEY = "test-key-123456"
FOLLOWUP = [
    ("why did Albania cut ties?", "قطع العلاقات الدبلوماسية"),
    ("how long were its diplomats given to leave?", "24 ساعة"),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory, settings, embedder):
    """The chat server with RAG_API_KEY set, on a copy of seeds/: (index folder, base URL)."""
    app, url, service = launch_chat(tmp_path_factory, dataclasses.replace(settings, api_key=KEY), embedder)
    yield service.index_dir, url
    app.close()


@pytest.fixture(scope="module")
def client(api):
    from openai import OpenAI

    return OpenAI(base_url=f"{api[1]}/v1", api_key=KEY, max_retries=0, timeout=60)


def _same_as_answer(extra: dict, text: str, expected) -> None:
    assert text == expected.text
    assert extra["found"] == expected.found
    assert [c["quote"] for c in extra["citations"]] == [c.quote for c in expected.citations]
    assert [(c["doc_id"], c["start"], c["end"]) for c in extra["citations"]] == [
        (c.doc_id, c.start, c.end) for c in expected.citations
    ]


def test_models_lists_the_corpus_model(client):
    assert [m.id for m in client.models.list().data] == [MODEL]


@pytest.mark.parametrize("question", ["why did Albania cut ties?", "لماذا قطعت ألبانيا علاقاتها مع إيران؟"])
def test_completion_equals_answer_with_citations(api, client, question):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}])
    extra = r.model_extra
    _same_as_answer(extra, r.choices[0].message.content, answer(question, index_dir=api[0]))
    assert any(ALBANIA_REASON in c["quote"] for c in extra["citations"])
    for c in extra["citations"]:
        assert article_text(c["doc_id"], api[0])[c["start"] : c["end"]] == c["quote"]
        assert f"[{c['n']}]" in r.choices[0].message.content


def test_streamed_completion_equals_the_plain_one(api, client):
    question = "Who does Britain say was behind the cyberattack on Albania?"
    stream = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": question}], stream=True)
    text, last = "", None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            text += chunk.choices[0].delta.content
        last = chunk
    assert last.choices[0].finish_reason == "stop"
    _same_as_answer(last.model_extra, text, answer(question, index_dir=api[0]))


def test_follow_up_reads_the_history(api, client):
    (q1, _), (q2, evidence) = FOLLOWUP
    first = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": q1}])
    history = [
        {"role": "system", "content": "You are a helpful assistant."},  # ignored, as a client's own prompt
        {"role": "user", "content": q1},
        {"role": "assistant", "content": first.choices[0].message.content},
    ]
    r = client.chat.completions.create(model=MODEL, messages=[*history, {"role": "user", "content": q2}])
    expected = answer(q2, index_dir=api[0], history=history[1:])
    _same_as_answer(r.model_extra, r.choices[0].message.content, expected)
    assert r.model_extra["searched_question"] != q2
    assert any(evidence in c["quote"] for c in r.model_extra["citations"])


def test_content_parts_are_read_as_text(api, client):
    parts = [{"type": "text", "text": "why did Albania"}, {"type": "text", "text": "cut ties?"}]
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": parts}])
    assert r.model_extra["found"] and r.model_extra["citations"]


def test_refused_question_is_a_completion_that_says_so(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "ما هي عاصمة أستراليا؟"}])
    extra = r.model_extra
    assert extra["found"] is False and extra["citations"] == [] and extra["missing"]
    assert "لا تتناول" in r.choices[0].message.content


def _post(url: str, body, key: str | None = KEY, raw: bytes | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    data = raw if raw is not None else json.dumps(body).encode()
    r = httpx.post(f"{url}/v1/chat/completions", content=data, headers=headers, timeout=60)
    return r.status_code, r.json()


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": MODEL, "messages": "hi"}, 400, "messages"),
        ({"model": MODEL, "messages": [{"role": "user", "content": 5}]}, 400, "messages[0]"),
        ({"model": MODEL, "messages": [{"role": "wizard", "content": "hi"}]}, 400, "messages[0]"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "   "}]}, 400, "messages[0]"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "x" * 1_000_000}]}, 413, None),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}] * 10_000}, 413, None),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}] * 201}, 400, "messages"),
        ({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}, 404, "model"),
        ({"messages": [{"role": "user", "content": "hi"}]}, 400, "model"),
        ({"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "n": 3}, 400, "n"),
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]},
            400,
            "tools",
        ),
        ({"model": MODEL, "messages": [{"role": "user", "content": "?!"}]}, 400, "messages"),
        ([1, 2, 3], 400, None),
    ],
)
def test_bad_requests_get_one_error_object(api, body, status, param):
    code, data = _post(api[1], body)
    assert code == status and set(data) == {"error"}, data
    assert data["error"]["message"] and data["error"]["param"] == param
    assert "Traceback" not in data["error"]["message"]


def test_malformed_json_and_missing_key_are_refused(api):
    code, data = _post(api[1], None, raw=b'{"model": "rag-arabic-news", "messages": [')
    assert code == 400 and "not valid JSON" in data["error"]["message"]
    code, data = _post(api[1], {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, key=None)
    assert code == 401 and data["error"]["code"] == "invalid_api_key"
    code, data = _post(api[1], {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}, key="wrong")
    assert code == 401
    # and the server keeps serving
    code, data = _post(api[1], {"model": MODEL, "messages": [{"role": "user", "content": "why did Albania cut ties?"}]})
    assert code == 200 and data["found"]


def test_off_loopback_without_a_key_is_refused(settings, tmp_path):
    from ui.openai_api import api_router

    router = api_router(service=None, key="", open_without_key=False)
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    app = FastAPI()
    app.include_router(router)
    r = TestClient(app).post("/v1/chat/completions", json={"model": MODEL, "messages": []})
    assert r.status_code == 401 and "RAG_API_KEY" in r.json()["error"]["message"]


async def _mcp_session_checks(session, index_dir) -> None:
    tools = {t.name for t in (await session.list_tools()).tools}
    assert tools == {"search_articles", "answer_question", "get_article"}
    found = (await session.call_tool("search_articles", {"query": "cyberattack on Albania", "k": 3})).structuredContent
    assert 1 <= len(found["passages"]) <= 3
    p = found["passages"][0]
    article = (await session.call_tool("get_article", {"doc_id": p["doc_id"]})).structuredContent
    assert (
        article["text"][p["start"] : p["end"]]
        == p["text"]
        == article_text(p["doc_id"], index_dir)[p["start"] : p["end"]]
    )
    result = (await session.call_tool("answer_question", {"question": "why did Albania cut ties?"})).structuredContent
    assert result["found"] and result["citations"]
    for c in result["citations"]:
        text = (await session.call_tool("get_article", {"doc_id": c["doc_id"]})).structuredContent["text"]
        assert text[c["start"] : c["end"]] == c["quote"]
    from urllib.parse import quote

    resource = await session.read_resource(f"article://{quote(p['doc_id'], safe='')}")
    assert resource.contents[0].text == article["text"]
    narrowed = (
        await session.call_tool("search_articles", {"query": "Albania", "since": "2030-01-01"})
    ).structuredContent
    assert narrowed["passages"] == [] and narrowed["note"]


def test_mcp_over_stdio(api):
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    async def run() -> None:
        params = StdioServerParameters(command=sys.executable, args=["-m", "rag.cli", "mcp", "--index", str(api[0])])
        async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            await _mcp_session_checks(session, api[0])

    asyncio.run(run())


def test_mcp_over_http_behind_the_key(api):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async def run() -> None:
        headers = {"Authorization": f"Bearer {KEY}"}
        async with (
            streamablehttp_client(f"{api[1]}/mcp", headers=headers) as (read, write, _),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            await _mcp_session_checks(session, api[0])

    asyncio.run(run())
    req = urllib.request.Request(f"{api[1]}/mcp", data=b"{}", headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    assert err.value.code == 401
