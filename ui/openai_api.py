"""OpenAI-compatible chat API beside the web chat: GET /v1/models and POST /v1/chat/completions, with the answer's
citations (exact quotes and offsets) carried as a top-level `citations` array, and MCP at /mcp; all behind
RAG_API_KEY."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from rag.answering import Answer
from rag.conversation import content_text

log = logging.getLogger(__name__)

MODEL_ID = "rag-arabic-news"
MAX_BODY_BYTES = 256_000  # a request body, at most
MAX_MESSAGES = 200  # messages in one request, at most
MAX_CONTENT_CHARS = 8_000  # characters of one message, at most
ROLES = ("system", "developer", "user", "assistant")
UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "response_format", "logprobs")


class ApiError(Exception):
    """A request the API refuses: an OpenAI-shaped error object with its HTTP status."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.param, self.code = status, param, code

    def response(self) -> JSONResponse:
        kind = "authentication_error" if self.status == 401 else "invalid_request_error"
        error = {"message": str(self), "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": error}, status_code=self.status)


def message_text(content: object, where: str) -> str:
    """A message's text: a string, or OpenAI content parts ([{"type": "text", "text": ...}]) joined."""
    if content is None:
        return ""
    try:
        text = content_text(content)
    except ValueError as exc:
        raise ApiError(400, f"{where}: {exc}", where) from None
    if len(text) > MAX_CONTENT_CHARS:
        raise ApiError(400, f"{where}: content is over {MAX_CONTENT_CHARS:,} characters", where, "content_too_long")
    return text


def read_request(body: object) -> tuple[str, list[dict], bool]:
    """The question (the last user message), the history (earlier user and assistant messages) and `stream`."""
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required: use GET /v1/models for its name", "model")
    if model != MODEL_ID:
        raise ApiError(
            404, f"the model {model!r} does not exist: this server has {MODEL_ID!r}", "model", "model_not_found"
        )
    for key in UNSUPPORTED:
        if body.get(key):
            raise ApiError(400, f"{key} is not supported: this model answers from the articles only", key)
    if body.get("n", 1) not in (1, None):
        raise ApiError(400, "n must be 1: one answer per question", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ApiError(400, "stream must be true or false", "stream")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ApiError(400, "messages must be a non-empty list", "messages")
    if len(messages) > MAX_MESSAGES:
        raise ApiError(400, f"at most {MAX_MESSAGES} messages per request", "messages")
    turns = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            raise ApiError(400, f"{where} must be an object with a role of {', '.join(ROLES)}", where)
        turns.append((m["role"], message_text(m.get("content"), where)))
    role, question = turns[-1]
    if role != "user" or not question.strip():
        raise ApiError(400, "the last message must be the user's question, with text", f"messages[{len(turns) - 1}]")
    history = [{"role": r, "content": t} for r, t in turns[:-1] if r in ("user", "assistant") and t.strip()]
    return question, history, stream


def extras(answer: Answer) -> dict[str, Any]:
    """What this API adds to OpenAI's shape: the citations as `rag ask --json` gives them, and the decision."""
    data = answer.to_dict()
    keys = (
        "citations",
        "found",
        "confidence",
        "searched_question",
        "composer",
        "missing",
        "partial",
        "related",
        "short",
        "more",
    )
    return {k: data[k] for k in keys}


def completion(answer: Answer, cid: str, created: int) -> dict[str, Any]:
    message = {"role": "assistant", "content": answer.text}
    return {
        "id": cid,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        **extras(answer),
    }


def chunks(answer: Answer, cid: str, created: int, size: int = 3) -> Iterator[str]:
    """Server-Sent Events in the `chat.completion.chunk` shape: the role, the verified text in a few pieces (cut at
    spaces, markers whole), then the finish with the citations; then [DONE]."""

    def event(delta: dict, finish: str | None = None, **more: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_ID, "choices": [choice]}
        return f"data: {json.dumps({**obj, **more}, ensure_ascii=False)}\n\n"

    yield event({"role": "assistant", "content": ""})
    words = answer.text.split(" ")
    step = max(1, -(-len(words) // size))
    for i in range(0, len(words), step):
        piece = " ".join(words[i : i + step])
        yield event({"content": piece if i == 0 else " " + piece})
    yield event({}, "stop", **extras(answer))
    yield "data: [DONE]\n\n"


def key_error(authorization: str, key: str, open_without_key: bool) -> ApiError | None:
    """Why a call with this Authorization header is refused (None when it is not): with `key` set it must be
    `Bearer <key>`; without one, calls are open only on loopback or a read-only server."""
    if key:
        if not hmac.compare_digest(authorization.encode(), f"Bearer {key}".encode()):
            message = "missing or wrong API key: send Authorization: Bearer $RAG_API_KEY"
            return ApiError(401, message, None, "invalid_api_key")
        return None
    if not open_without_key:
        return ApiError(401, "this server is reachable off loopback: set RAG_API_KEY to use the API", None, "no_key")
    return None


def api_router(service, key: str, open_without_key: bool) -> APIRouter:
    """The /v1 routes over a ChatService. With `key` set every call must carry `Authorization: Bearer <key>`;
    without one, calls are refused unless `open_without_key` (loopback, or a read-only server)."""
    router = APIRouter()

    def check(request: Request) -> None:
        if (error := key_error(request.headers.get("authorization", ""), key, open_without_key)) is not None:
            raise error

    @router.get("/v1/models")
    def models(request: Request) -> Response:
        try:
            check(request)
        except ApiError as exc:
            return exc.response()
        data = [{"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "rag-arabic-news"}]
        return JSONResponse({"object": "list", "data": data})

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            check(request)
            raw = await request.body()
            if len(raw) > MAX_BODY_BYTES:
                raise ApiError(413, f"the request body is over {MAX_BODY_BYTES:,} bytes", None, "body_too_large")
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError) as exc:
                raise ApiError(400, f"the request body is not valid JSON ({str(exc)[:80]})") from None
            question, history, stream = read_request(body)
            try:
                answer = await run_in_threadpool(service.ask, question, history)
            except ValueError as exc:  # an empty question, a bad history: the service's one line
                raise ApiError(400, str(exc), "messages") from None
        except ApiError as exc:
            log.info("refused API request: %s", exc)
            return exc.response()
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if stream:
            return StreamingResponse(chunks(answer, cid, created), media_type="text/event-stream")
        return JSONResponse(completion(answer, cid, created))

    return router


class GuardedMCP:
    """The MCP server's streamable-HTTP endpoint inside the chat's server: the key checked first, and its session
    manager started in the serving event loop on the first request (the chat's server has no lifespan for it)."""

    def __init__(self, server, key: str, open_without_key: bool) -> None:
        from mcp.server.fastmcp.server import StreamableHTTPASGIApp

        server.streamable_http_app()  # creates the session manager
        self.manager = server.session_manager
        self.endpoint = StreamableHTTPASGIApp(self.manager)
        self.key, self.open = key, open_without_key
        self._ready = None

    async def __call__(self, scope, receive, send) -> None:
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if (error := key_error(headers.get("authorization", ""), self.key, self.open)) is not None:
            await error.response()(scope, receive, send)
            return
        if self._ready is None:
            self._ready = asyncio.Event()

            async def hold() -> None:
                async with self.manager.run():
                    self._ready.set()
                    await asyncio.Event().wait()

            self._task = asyncio.get_running_loop().create_task(hold())
        await self._ready.wait()
        await self.endpoint(scope, receive, send)


def mount_api(server_app, service, host: str, port: int, key: str, read_only: bool, loopback: bool) -> None:
    """Put /v1 and /mcp in front of the chat's routes (same process and port)."""
    from rag.mcp_server import build_server

    open_without_key = loopback or read_only
    routes = list(api_router(service, key, open_without_key).routes)
    mcp = GuardedMCP(build_server(service.index_dir, host, port, service=service), key, open_without_key)
    routes.append(Route("/mcp", endpoint=mcp, methods=["GET", "POST", "DELETE"]))
    server_app.router.routes[0:0] = routes
