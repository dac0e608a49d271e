"""Build the index and leave its new generation ready to read: the store writes it (`rag.store`), and the reader
computes what it derives from it (BM25 arrays, the name matcher: `rag.generation`), so the first question after a
build does not. Every front end builds through here: `rag index`, `rag.build_index`, the chat's uploads."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from rag.indexer import BuildOptions
from rag.indexer import build_index as write_index
from rag.settings import Settings
from rag.store import MANIFEST, BuildStats, is_warm

log = logging.getLogger(__name__)


def build_index(
    seeds_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    options: BuildOptions | None = None,
    warm: bool = True,
    **kwargs,
) -> BuildStats:
    """`rag.indexer.build_index` (same arguments), then, with `warm`, the new generation's reader caches computed
    and kept in the index folder (a no-op when they exist: an unchanged corpus, or a small build that derived
    them). A caller that loads the new generation itself, like the chat after an upload, passes warm=False and
    warms its own `SearchIndex`."""
    settings = settings or Settings.from_env()
    options = options or BuildOptions(**kwargs)
    stats = write_index(seeds_dir, index_dir, settings=settings, options=options)
    if warm:
        warm_index(Path(index_dir) if index_dir is not None else settings.index_dir, settings, options)
    return stats


def warm_index(index: Path, settings: Settings, options: BuildOptions | None = None) -> None:
    """Compute and keep the reader caches of the index's current generation, unless they exist. A failure here
    costs only speed: queries compute them on first use."""
    warn = (options and options.on_warning) or log.warning
    try:
        if is_warm(index, str(json.loads((index / MANIFEST).read_text())["generation"])):
            return
        from rag.retrieve import SearchIndex  # only when the caches must be computed: LangChain is slow to import

        SearchIndex(index, settings, embedder=options and options.embedder).warm()
    except Exception as exc:
        warn(f"could not precompute the index caches ({exc}); queries compute them on first use")
