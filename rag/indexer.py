"""Bring the index in line with the seeds: check, plan, embed, commit (`build_index`, with `BuildOptions`).

Crash safety: vectors are cached in SQLite as they are computed (committed per batch, so a killed build resumes
where it stopped); the documents and chunks change in one transaction (`rag.commit`). Reader caches of the new
generation are the reader's job (`rag.building`), except what a small build derives cheaply from the last ones.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rag.articles import (
    Article,
    content_hash,
    read_articles,
    remove_leftovers,
    seed_files,
)
from rag.chunking import chunk_sentences, max_sentence_chars, split_sentences
from rag.commit import Carry, commit_documents, drop_old_caches, file_stamps, save_stamps, unchanged_files
from rag.embed import Embedder, batched_by_length, model_fingerprint
from rag.settings import Settings
from rag.store import (
    DB_NAME,
    PAGE_SIZE,
    SCHEMA,
    BuildStats,
    IndexError_,
    _convert_vectors,
    _count,
    _mostly_free,
    _only_format_changed,
    add_missing_columns,
    check_compatible,
    check_database,
    check_seeds_folder,
    compact,
    connect,
    damaged,
    expected_meta,
    faiss_kind_matches,
    faiss_matches,
    make_index_folder,
    read_meta,
)
from rag.vectors import (
    VECTOR_ENCODING,
    encode_spans,
    encode_vector,
    resolve_kind,
)

log = logging.getLogger(__name__)


def embed_text(title: str, chunk: str) -> tuple[str, int]:
    """What the model reads for a chunk (title line, then the chunk) and where the chunk starts in it."""
    prefix = f"{title}\n" if title else ""
    return prefix + chunk, len(prefix)


@dataclass
class _PlannedChunk:
    ord: int
    start: int
    end: int
    first_sentence: int
    last_sentence: int
    text: str  # what the model reads
    spans: list[tuple[int, int]]  # sentence spans inside `text`
    embed_hash: str


def plan_chunks(article: Article, settings: Settings, fingerprint: str):
    sentences = split_sentences(article.text, max_sentence_chars(settings))
    planned = []
    for i, ch in enumerate(chunk_sentences(sentences, settings.chunk_chars, settings.chunk_overlap)):
        text, shift = embed_text(article.title, article.text[ch.start : ch.end])
        spans = [
            (sentences[s].start - ch.start + shift, sentences[s].end - ch.start + shift)
            for s in range(ch.first_sentence, ch.last_sentence + 1)
        ]
        planned.append(
            _PlannedChunk(
                i, ch.start, ch.end, ch.first_sentence, ch.last_sentence, text, spans, content_hash(fingerprint, text)
            )
        )
    return sentences, planned


@dataclass
class BuildOptions:
    """How a build runs, beyond the settings (every field has the default a plain `rag index` uses)."""

    rebuild: bool = False  # start from an empty index (needed after changing the model or chunking)
    progress: bool = True  # a progress bar with chunks/s while embedding
    embedder: Embedder | None = None  # an already loaded model to reuse
    on_warning: Callable[[str], None] | None = None  # one line per skipped input (default: logged as warnings)
    yes: bool = False  # index even when seeds/ holds more than RAG_MAX_SEED_FILES files not yet indexed
    # articles not yet in seeds/ (an upload being staged): they replace the articles of the same source files
    pending: Sequence[Article] = ()
    # called after embedding, just before the index commits (an upload moves its files into seeds/ here); if it
    # raises, the index is left as it was
    before_commit: Callable[[], None] | None = None
    # what embeds the chunks with no stored vector (default: the model in this process; `rag.ray_embed.ray_engine`
    # embeds them on a Ray cluster)
    engine: EmbedEngine | None = None


@dataclass
class _Plan:
    """What a build will do: the articles read, which changed or went, and the seed files' stamps."""

    articles: list[Article]
    changed: list[Article]
    removed: list[str]
    stamps: dict[str, tuple[int, int]]
    stats: BuildStats


def build_index(
    seeds_dir: str | Path | None = None,
    index_dir: str | Path | None = None,
    *,
    settings: Settings | None = None,
    options: BuildOptions | None = None,
    **kwargs,
) -> BuildStats:
    """Bring the index at `index_dir` in line with the articles under `seeds_dir`: check, plan, embed, commit.

    New and changed articles are embedded (only chunks whose text is new go through the model); removed
    ones are deleted; unchanged ones are not touched. With nothing to do, the model is not even loaded.
    Every run first checks the index: SQLite's `PRAGMA quick_check`, and that the FAISS file loads and holds
    one vector per chunk; a missing or damaged FAISS file is rebuilt from the stored vectors (no re-embedding).
    A build of at most CARRY_MAX articles derives the next generation's reader caches from the last ones; the
    reader computes them otherwise (`rag.building.build_index` does it at once).

    Args:
        seeds_dir: folder of .txt/.md/.jsonl/.parquet articles (default: settings.seeds_dir).
        index_dir: index folder (default: settings.index_dir); created when missing.
        settings: pipeline settings (default: from the environment).
        options: `BuildOptions`; or its fields as keyword arguments (`progress=False, embedder=...`).

    Returns:
        BuildStats with counts of added / updated / removed / unchanged articles and chunks embedded.

    Raises:
        IndexError_: one line naming the fix (a damaged database, an index path that is a file, a system folder
            as seeds, too many new files without `yes`).
    """
    t0 = time.perf_counter()
    options = options or BuildOptions(**kwargs)
    settings = settings or Settings.from_env()
    seeds = Path(seeds_dir) if seeds_dir is not None else settings.seeds_dir
    index = Path(index_dir) if index_dir is not None else settings.index_dir
    warn = options.on_warning or log.warning
    check_seeds_folder(seeds)
    if leftovers := remove_leftovers(seeds):
        warn(f"removed {leftovers} temporary file(s) an interrupted upload left in {seeds}")
    fingerprint = options.embedder.fingerprint if options.embedder else model_fingerprint(str(settings.model))
    conn = connect(make_index_folder(index) / DB_NAME)
    try:
        stats, carried = _update(conn, index, seeds, settings, options, fingerprint, warn)
    except sqlite3.DatabaseError as exc:
        raise damaged(index, exc) from exc
    finally:
        conn.close()
    if carried is not None:
        carry, new_docs, generation = carried
        carry.apply(index, new_docs, generation)  # a small build derives the reader caches: cheap
    drop_old_caches(index)
    stats.seconds = time.perf_counter() - t0
    return stats


def _update(conn, index: Path, seeds: Path, settings: Settings, options, fingerprint: str, warn) -> tuple:
    """Check, plan, then embed and commit (or, with nothing changed, repair the FAISS file if it needs it): the
    build's stats and what it carries to the reader's caches (see `_commit`)."""
    want = expected_meta(settings, fingerprint)
    meta = read_meta(conn)
    rebuild = _check(conn, index, meta, want, options.rebuild, warn)
    plan = _plan(conn, seeds, settings, options, rebuild, warn)
    carried = None
    if not plan.changed and not plan.removed and not rebuild:
        save_stamps(conn, plan.stamps, transaction=True)
        _repair(conn, index, meta, want, settings, warn)
        if options.before_commit:
            options.before_commit()
    else:
        carried = _commit(conn, index, plan, meta, want, rebuild, settings, options, fingerprint)
    plan.stats.chunks = _count(conn, "chunks")
    return plan.stats, carried


def _commit(
    conn, index: Path, plan, meta: dict, want: dict, rebuild: bool, settings: Settings, options, fingerprint: str
) -> tuple[Carry, list[str], str] | None:
    """Embed the planned chunks and commit the new generation; what a small build carries to the reader's caches
    (the carry, every article id after the commit, the generation), or None when the reader computes them."""
    plans = {a.doc_id: plan_chunks(a, settings, fingerprint) for a in plan.changed}
    _embed(conn, plans, settings, options, plan.stats)
    if options.before_commit:
        options.before_commit()
    carry = None if rebuild else Carry.before_commit(conn, meta, plan.changed, plan.removed)
    generation = commit_documents(
        conn, index, plan.changed, plan.removed, plans, want, rebuild, settings, carry and carry.terms, plan.stamps
    )
    if rebuild and (conn.execute("PRAGMA page_size").fetchone()[0] != PAGE_SIZE or _mostly_free(conn)):
        compact(conn)
    if carry is None:
        return None
    return carry, [d for (d,) in conn.execute("SELECT doc_id FROM documents ORDER BY doc_id")], generation


def _check(conn, index: Path, meta: dict, want: dict, rebuild: bool, warn: Callable[[str], None]) -> bool:
    """The database's schema and health, and whether this build must start from empty (returned): asked to, or
    the index has an older format (every stored vector is reused); a different model or chunking is refused."""
    conn.executescript(SCHEMA)
    add_missing_columns(conn)
    if meta.get("faiss_file"):
        check_database(conn, index)
    if not rebuild and _only_format_changed(meta, want):
        warn(f"index at {index} has format {meta['format_version']}, now {want['format_version']}: rebuilding it")
        rebuild = True  # same model and chunking, so every stored vector is reused
    if not rebuild:
        check_compatible(meta, want, index)
    if meta.get("format_version") and meta.get("vector_encoding") != VECTOR_ENCODING:
        _convert_vectors(conn)  # an index from before format 5: float32 chunk and float16 sentence vectors
    return rebuild


def _plan(conn, seeds: Path, settings: Settings, options: BuildOptions, rebuild: bool, warn) -> _Plan:
    """Read the seed files that changed since the last build (by size and time) and compare their articles with
    the stored ones: what is new, changed, unchanged or removed."""
    stored_sources = {src for (src,) in conn.execute("SELECT DISTINCT source FROM documents")}
    files = seed_files(seeds)
    new_files = sum(f.relative_to(seeds).as_posix() not in stored_sources for f in files)
    if new_files > settings.max_seed_files and not options.yes:
        raise IndexError_(
            f"{seeds} holds {new_files:,} article files not yet indexed, more than RAG_MAX_SEED_FILES="
            f"{settings.max_seed_files:,}: check the folder, then run `rag index --yes` to index them all"
        )
    stamps = file_stamps(seeds, files)
    replaced = {a.source for a in options.pending}
    kept = {} if rebuild else unchanged_files(conn, stamps, replaced)  # doc_id -> source, of files not read
    kept_files = set(kept.values())
    articles, skipped = read_articles(seeds, [f for f in files if f.relative_to(seeds).as_posix() not in kept_files])
    if any(a.doc_id in kept for a in articles):  # an article id moved between files: read them all
        kept = {}
        articles, skipped = read_articles(seeds, files)
    for line in skipped:
        warn(f"skipped {line}")
    if options.pending:
        articles = [a for a in articles if a.source not in replaced] + list(options.pending)
    stored = {} if rebuild else dict(conn.execute("SELECT doc_id, content_hash FROM documents"))
    current = {a.doc_id for a in articles}
    changed = [a for a in articles if stored.get(a.doc_id) != a.content_hash]
    removed = [d for d in stored if d not in current and d not in kept]
    stats = BuildStats(skipped=skipped, removed=len(removed))
    stats.added = sum(a.doc_id not in stored for a in changed)
    stats.updated = len(changed) - stats.added
    stats.unchanged = len(articles) - len(changed) + len(kept)
    return _Plan(articles, changed, removed, stamps, stats)


def _repair(conn, index: Path, meta: dict, want: dict, settings: Settings, warn) -> None:
    """With no article to change: a missing or damaged FAISS file, or one of another kind than the settings ask
    for, is written again from the stored vectors, as a new generation."""
    if not faiss_matches(conn, index, meta):
        warn(f"the vector file of the index at {index} is missing or damaged: rebuilt from stored vectors")
        commit_documents(conn, index, [], [], {}, want, rebuild=False, settings=settings)
    elif not faiss_kind_matches(conn, meta, settings):
        kind = resolve_kind(settings.faiss_index, _count(conn, "chunks"), settings.faiss_auto_above)
        warn(f"building a {kind} FAISS index from the stored vectors (RAG_FAISS_INDEX={settings.faiss_index})")
        commit_documents(conn, index, [], [], {}, want, rebuild=False, settings=settings)


def _embed(conn, plans: dict, settings: Settings, options: BuildOptions, stats: BuildStats) -> None:
    """Embed the planned chunks whose text has no stored vector: with the options' engine, or the numpy encoder
    for a few (no torch to load), or the model."""
    todo = {p.embed_hash: p for _, planned in plans.values() for p in planned}
    have = _existing_hashes(conn, list(todo))
    missing = [p for h, p in todo.items() if h not in have]
    stats.reused = sum(len(planned) for _, planned in plans.values()) - len(missing)
    if not missing:
        return
    engine, embedder = options.engine, options.embedder
    small = embedder is None and len(missing) <= SMALL_BUILD
    if engine is None and small and (encoder := _numpy_encoder(settings)) is not None:
        engine = local_engine(encoder, settings.batch_size)
        stats.precision = f"numpy fp32 ({len(missing)} chunk(s): quicker than loading torch)"
    elif engine is None:
        embedder = embedder or Embedder(str(settings.model), settings.precision)
        engine = local_engine(embedder, settings.batch_size)
        stats.precision = embedder.precision_line()
    stats.model_loaded = True
    _embed_missing(conn, engine, missing, options.progress)
    stats.embedded = len(missing)


def _existing_hashes(conn: sqlite3.Connection, hashes: list[str]) -> set[str]:
    found: set[str] = set()
    for i in range(0, len(hashes), 500):
        part = hashes[i : i + 500]
        q = f"SELECT embed_hash FROM embeddings WHERE embed_hash IN ({','.join('?' * len(part))})"
        found.update(h for (h,) in conn.execute(q, part))
    return found


EmbeddedRow = tuple[str, bytes, bytes]  # embed_hash, chunk vector, sentence vectors (`rag.vectors` encodings)
EmbedEngine = Callable[[list["_PlannedChunk"]], Iterator[list[EmbeddedRow]]]


SMALL_BUILD = 32  # chunks to embed, at most, for a build to use the numpy encoder instead of loading torch


def _numpy_encoder(settings: Settings):
    """The model's numpy encoder (`rag.query_encoder`), which embeds a few chunks in less time than torch takes to
    import; None for a model folder it does not read."""
    from rag.query_encoder import QueryEncoder, UnsupportedModel

    try:
        return QueryEncoder(settings.model)
    except UnsupportedModel:
        return None


def local_engine(embedder, batch_size: int) -> EmbedEngine:
    """Embedding in this process: batches of similar length through the loaded model (an `Embedder`, or the numpy
    encoder for a small build: anything with `embed_chunks`)."""

    def run(missing: list[_PlannedChunk]) -> Iterator[list[EmbeddedRow]]:
        texts = [p.text for p in missing]
        for idx in batched_by_length(texts, batch_size):
            batch = [missing[i] for i in idx]
            vecs = embedder.embed_chunks([p.text for p in batch], [p.spans for p in batch])
            yield [embedded_row(p.embed_hash, v) for p, v in zip(batch, vecs, strict=True)]

    return run


def embedded_row(embed_hash: str, embedding) -> EmbeddedRow:
    """What the store keeps of one chunk's embedding."""
    return (
        embed_hash,
        encode_vector(embedding.vector),
        encode_spans(embedding.span_vectors),
    )


def _embed_missing(conn, engine: EmbedEngine, missing: list[_PlannedChunk], progress: bool) -> None:
    from tqdm import tqdm

    bar = tqdm(total=len(missing), unit="chunk", desc="embedding", disable=not progress, smoothing=0.1)
    try:
        for rows in engine(missing):
            with conn:  # one small transaction per batch: a killed build keeps what it has embedded
                conn.execute("BEGIN")
                conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?)", rows)
            bar.update(len(rows))
    finally:
        bar.close()
