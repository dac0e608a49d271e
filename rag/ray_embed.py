"""Embedding on a Ray cluster (`rag index --ray`): Ray Data's `map_batches` with a callable class on an actor pool.

Planning stays local (reading, cleaning, chunking, and finding the chunks whose text hash has no stored vector);
only those chunks go through a Ray Dataset. Each actor loads the model once (`num_gpus=1` per actor where the
cluster has GPUs; otherwise one single-threaded CPU actor per core), and the vectors stream back to this process,
which commits them batch by batch into the same SQLite store as the local builder does, keyed by text hash, so a
killed run resumes. Needs the `scale` extra (`pip install -e '.[scale]'`); the model folder must exist at the
same path on every node.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Iterator

import numpy as np

from rag.indexer import EmbeddedRow, EmbedEngine, embedded_row
from rag.settings import Settings, UserError


class RayMissing(UserError):
    """Ray is not installed; the message says how to install it."""


class ChunkEmbedder:
    """One Ray actor: the model, loaded once, embedding batches of chunks (`rag.embed.Embedder.embed_chunks`)."""

    def __init__(self, model: str, precision: str, threads: int) -> None:
        import torch

        from rag.embed import Embedder

        torch.set_num_threads(max(1, threads))
        self.embedder = Embedder(model, precision)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        texts = [str(t) for t in batch["text"]]
        spans = [[tuple(s) for s in json.loads(x)] for x in batch["spans"]]
        rows = [
            embedded_row(str(h), v)
            for h, v in zip(batch["embed_hash"], self.embedder.embed_chunks(texts, spans), strict=True)
        ]
        return {"embed_hash": [r[0] for r in rows], "vector": [r[1] for r in rows], "spans": [r[2] for r in rows]}


def ray_engine(settings: Settings, address: str | None = None, actors: int | None = None) -> EmbedEngine:
    """An embedding engine for `build_index(engine=...)` that runs on Ray: the local machine's cores when `address`
    (or RAY_ADDRESS) is unset, an existing cluster otherwise."""
    try:
        import ray
    except ImportError as exc:
        raise RayMissing("Ray is not installed: run `pip install -e '.[scale]'` (or build without --ray)") from exc

    def run(missing: list) -> Iterator[list[EmbeddedRow]]:
        target = address or os.environ.get("RAY_ADDRESS")
        logging.getLogger("ray").setLevel(logging.WARNING)  # our own progress bar counts the chunks
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        started = not ray.is_initialized()
        if started:
            ray.init(
                address=target,
                num_cpus=None if target else len(os.sched_getaffinity(0)),  # the cores this process may use
                include_dashboard=False,
                log_to_driver=False,
                logging_level="ERROR",
                configure_logging=True,
            )
        try:
            resources = ray.cluster_resources()
            gpus = int(resources.get("GPU", 0))
            cpus = max(1, int(resources.get("CPU", 1)))
            # CPU clusters: one single-threaded actor per core by default. On 2 cores, 2 actors of 1 thread embedded
            # 48.7 chunks/s after start-up, 1 actor of 2 threads 38.1 and the local builder 44.7: a 2-thread torch
            # loses time whenever Ray's own processes take a core from one of its threads.
            blocks = math.ceil(len(missing) / settings.batch_size)
            pool = max(1, min(actors or settings.ray_actors or (gpus or cpus), blocks))  # no idle actor loads a model
            per_actor = 0 if gpus else max(1, cpus // pool)
            items = [{"embed_hash": p.embed_hash, "text": p.text, "spans": json.dumps(p.spans)} for p in missing]
            items.sort(key=lambda x: -len(x["text"]))  # batches of similar length, as the local builder makes
            # One block per batch, each block embedded whole (batch_size=None): Ray's own bundling of its default
            # blocks gave the actor alternate batches of 32 and 4 chunks, 62 calls where 35 do.
            ds = ray.data.from_items(items, override_num_blocks=blocks).map_batches(
                ChunkEmbedder,
                fn_constructor_kwargs={
                    "model": str(settings.model),
                    "precision": settings.precision,
                    "threads": per_actor or 1,
                },
                batch_size=None,
                compute=ray.data.ActorPoolStrategy(size=pool),
                num_gpus=1 if gpus else 0,
                num_cpus=per_actor or 1,
                batch_format="numpy",
            )
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
                hashes, vectors, spans = batch["embed_hash"], batch["vector"], batch["spans"]
                yield [(str(h), bytes(v), bytes(s)) for h, v, s in zip(hashes, vectors, spans, strict=True)]
        finally:
            if started:
                ray.shutdown()

    return run
