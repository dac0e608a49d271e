"""Who may reach the chat: loopback by default, a throttled login (RAG_AUTH) or read-only beyond it, and no raw
uploads into a read-only chat."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import threading
import time
from collections import deque

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from rag.settings import Settings

log = logging.getLogger(__name__)
MIN_PASSWORD = 8  # characters of the RAG_AUTH password, at least


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class LoginGuard:
    """Gradio's `auth` callable for RAG_AUTH: a constant-time check of one user and password, throttled.

    After `attempts` failed logins within `window` seconds, every login (right or wrong) fails for `lockout` seconds,
    so 100 guesses take minutes, not a second. Failures are counted for all names together: a guesser who varies
    the user name is slowed all the same.
    """

    def __init__(
        self, user: str, password: str, attempts: int = 5, window: float = 60.0, lockout: float = 30.0
    ) -> None:
        self.user, self.password = user, password
        self.attempts, self.window, self.lockout = attempts, window, lockout
        self._failures: deque[float] = deque()
        self._locked_until = 0.0
        self._lock = threading.Lock()

    def __call__(self, username: str, password: str) -> bool:
        now = time.monotonic()
        with self._lock:
            if now < self._locked_until:
                return False
            ok = hmac.compare_digest(username.encode(), self.user.encode()) & hmac.compare_digest(
                password.encode(), self.password.encode()
            )
            if ok:
                return True
            self._failures.append(now)
            while self._failures and self._failures[0] < now - self.window:
                self._failures.popleft()
            if len(self._failures) >= self.attempts:
                self._locked_until = now + self.lockout
                self._failures.clear()
                log.warning("%d failed logins within %.0f s: logins refused for %.0f s", self.attempts, self.window,
                            self.lockout)  # fmt: skip
            return False


def server_auth(host: str, settings: Settings, read_only: bool) -> LoginGuard | None:
    """Gradio's `auth` for this server; refuses (ValueError) to serve off loopback with neither RAG_AUTH nor
    --read-only, since anyone who reaches the port could then change the corpus, and a password under
    MIN_PASSWORD characters."""
    auth = None
    if settings.auth:
        user, sep, password = settings.auth.partition(":")
        if not sep or not user or not password:
            raise ValueError("RAG_AUTH must be user:password (both non-empty)")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"RAG_AUTH's password must be at least {MIN_PASSWORD} characters")
        auth = LoginGuard(user, password)
    if not is_loopback(host) and auth is None and not read_only:
        raise ValueError(
            f"serving on {host} lets anyone who reaches the port add articles: "
            "set RAG_AUTH=user:password, or start with --read-only"
        )
    return auth


async def _no_uploads(request: Request) -> JSONResponse:
    return JSONResponse({"error": "this chat is read-only: uploads are turned off"}, status_code=403)


def block_uploads(server_app) -> None:
    """In front of Gradio's routes: a read-only chat takes no file into Gradio's temp folder at all."""
    server_app.router.routes[0:0] = [Route(p, _no_uploads, methods=["POST"]) for p in ("/gradio_api/upload",)]
