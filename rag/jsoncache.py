"""Data parsed once from installed files (the dictionaries, the place tables), cached as JSON under a stamp's digest."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def temp_beside(path: Path) -> Path:
    """A hidden name beside `path`, unique to this process and thread, to write to and then rename over `path`."""
    return path.with_name(f".{path.name}-{os.getpid()}-{threading.get_ident()}")


def cached_json(cache_dir: str | Path | None, prefix: str, stamp: object, build: Callable[[], Any]) -> Any:
    """`build()`'s JSON-able result, read from `<cache_dir>/<prefix>-<digest of stamp>.json` when it is there and
    readable, else built and written there (atomically; a read-only folder only means building again next time)."""
    digest = hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"{prefix}-{digest}.json" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            return json.loads(cache.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            log.warning("cache %s is unreadable: building it again", cache)
    data = build()
    if cache is not None:
        tmp = temp_beside(cache)
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
            tmp.replace(cache)
        except OSError:
            tmp.unlink(missing_ok=True)
    return data
