"""A scripted OpenAI-compatible server for the tests: real HTTP on a loopback port, `/v1/chat/completions` with and
without SSE streaming, one scripted reply per request (a test double for an LLM server, which cannot run here)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class ScriptedLLM:
    """`replies` is consumed one per request; each is a dict:

    - {"text": "..."}: a normal reply (streamed in small pieces when the request asks for a stream);
    - {"status": 500}: an HTTP error; {"sleep": s, ...}: wait first; {"malformed": True}: a body that is not JSON;
    - {"cut": True, "text": "..."}: a stream that stops halfway, with no finish_reason and no [DONE].
    """

    def __init__(self) -> None:
        self.replies: list[dict] = []
        self.requests: list[dict] = []
        self.default = {"text": "NO_ANSWER"}
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def script(self, *replies: dict) -> None:
        self.replies = list(replies)
        self.requests.clear()

    def _next(self) -> dict:
        return self.replies.pop(0) if self.replies else self.default

    def _handler(self):
        llm = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self.send_error(404)
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                llm.requests.append(body)
                reply = llm._next()
                time.sleep(reply.get("sleep", 0))
                if "status" in reply:
                    self._json({"error": {"message": "scripted failure"}}, reply["status"])
                elif reply.get("malformed"):
                    self._raw(b'{"choices": [ not json', "application/json")
                elif body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._json(_completion(body, reply.get("text", "")))

            def _json(self, data: dict, status: int = 200) -> None:
                self._raw(json.dumps(data).encode(), "application/json", status)

            def _raw(self, data: bytes, kind: str, status: int = 200) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body: dict, reply: dict) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                text = reply.get("text", "")
                pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
                if reply.get("cut"):
                    pieces = pieces[: len(pieces) // 2]
                for piece in pieces:
                    self._event(_chunk(body, {"content": piece}, None))
                    time.sleep(0.01)
                if reply.get("cut"):
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._event(_chunk(body, {}, "stop"))
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()

            def _event(self, data: dict) -> None:
                self.wfile.write(f"data: {json.dumps(data)}\n\n".encode())
                self.wfile.flush()

        return Handler


def _completion(body: dict, text: str) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


def _chunk(body: dict, delta: dict, finish: str | None) -> dict:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model", "scripted"),
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
