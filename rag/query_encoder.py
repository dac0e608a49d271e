"""The model's query side in numpy: questions are embedded without importing torch or sentence-transformers.

A question is a few dozen tokens, so the encoder's twelve layers are a handful of small matrix products: numpy
does them in a few milliseconds, and a fresh `rag ask` skips the 5 s of importing torch, transformers and
sentence-transformers. It reads the same folder (BERT weights in safetensors, the tokenizer, the pooling config)
and computes what sentence-transformers computes: the "query: " prompt, mean pooling over every token, L2
normalisation. tests/test_model.py holds it to cosine >= 0.9999 with the torch model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from rag.tokens import Batch, ChunkEmbedding, Tokens, chunk_embeddings

QUESTIONS_EN = Path(__file__).parent / "data" / "questions_en.txt"


def question_centroid(embed_queries: Callable[[list[str]], np.ndarray], cache: Path | None = None) -> np.ndarray:
    """Mean vector of the English questions in rag/data/questions_en.txt.

    It stands for what English questions share whatever they ask; taking part of it out of an English question
    leaves more of what it asks about for matching Arabic text (see `SearchIndex.query_vector`). Embedding the
    questions takes about a second, so with `cache` (a model folder) it is kept there as a .npy named by the
    questions' hash (a read-only folder computes it each time).
    """
    text = QUESTIONS_EN.read_text(encoding="utf-8")
    path = cache / f"english-centroid-{hashlib.sha256(text.encode()).hexdigest()[:12]}.npy" if cache else None
    if path is not None and path.is_file():
        with contextlib.suppress(OSError, ValueError):
            return np.load(path, allow_pickle=False)
    centroid = embed_queries([x for x in text.splitlines() if x.strip() and not x.startswith("#")]).mean(0)
    if path is not None:
        with contextlib.suppress(OSError):
            np.save(path, centroid, allow_pickle=False)
    return centroid


class UnsupportedModel(ValueError):
    """The folder holds a model this encoder does not reproduce (the torch path is used instead)."""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file, memory-mapped (a row of the 250k-word table is read when used)."""
    dtypes = {"F16": np.float16, "F32": np.float32, "BF16": None}
    with open(path, "rb") as fh:
        size = int.from_bytes(fh.read(8), "little")
        header = json.loads(fh.read(size))
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + size)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = dtypes.get(info["dtype"])
        if dtype is None:
            raise UnsupportedModel(f"{path.name}: tensor {name} has dtype {info['dtype']}")
        start, end = info["data_offsets"]
        out[name] = data[start:end].view(dtype).reshape(info["shape"])
    return out


def _erf(x: np.ndarray) -> np.ndarray:
    """erf to within 1.5e-7 (Abramowitz and Stegun 7.1.26); numpy has none, and scipy costs a second to import."""
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def layer_weights(w: Callable[[str], np.ndarray], p: str) -> tuple:
    """One BERT layer's weights as `QueryEncoder.run` multiplies them (`w` reads a tensor by name, as float32)."""
    qkv = np.concatenate([w(p + f"attention.self.{n}.weight") for n in ("query", "key", "value")]).T
    qkv_bias = np.concatenate([w(p + f"attention.self.{n}.bias") for n in ("query", "key", "value")])
    return (
        np.ascontiguousarray(qkv),
        qkv_bias,
        np.ascontiguousarray(w(p + "attention.output.dense.weight").T),
        w(p + "attention.output.dense.bias"),
        (w(p + "attention.output.LayerNorm.weight"), w(p + "attention.output.LayerNorm.bias")),
        np.ascontiguousarray(w(p + "intermediate.dense.weight").T),
        w(p + "intermediate.dense.bias"),
        np.ascontiguousarray(w(p + "output.dense.weight").T),
        w(p + "output.dense.bias"),
        (w(p + "output.LayerNorm.weight"), w(p + "output.LayerNorm.bias")),
    )


class QueryEncoder:
    """Embeds questions like the folder's sentence-transformers model does, in numpy."""

    def __init__(self, folder: str | Path) -> None:
        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
            st_config = json.loads((folder / "config_sentence_transformers.json").read_text())
            pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
            modules = [m["type"] for m in json.loads((folder / "modules.json").read_text())]
        except (OSError, ValueError, KeyError) as exc:
            raise UnsupportedModel(f"{folder} is not a sentence-transformers folder ({exc})") from exc
        supported = (
            config.get("model_type") == "bert"
            and config.get("hidden_act") == "gelu"
            and config.get("position_embedding_type", "absolute") == "absolute"
            and pooling.get("pooling_mode_mean_tokens")
            and pooling.get("include_prompt", True)
            and modules[-1].endswith("Normalize")
            and (folder / "model.safetensors").is_file()
            and (folder / "tokenizer.json").is_file()
        )
        if not supported:
            raise UnsupportedModel(f"{folder}: only BERT with mean pooling and normalisation is read in numpy")
        self.folder = folder
        self.prompt = (st_config.get("prompts") or {}).get("query", "")
        self.document_prompt = (st_config.get("prompts") or {}).get("document", "")
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        self.tokens = Tokens.from_file(folder / "tokenizer.json", int(config["max_position_embeddings"]))
        raw = read_safetensors(folder / "model.safetensors")
        prefix = "" if "embeddings.word_embeddings.weight" in raw else "bert."
        self.words = raw[prefix + "embeddings.word_embeddings.weight"]  # stays memory-mapped; rows widened on use

        def w(name: str) -> np.ndarray:
            return np.ascontiguousarray(raw[prefix + name], dtype=np.float32)

        self.positions = w("embeddings.position_embeddings.weight")
        self.token_type = w("embeddings.token_type_embeddings.weight")[0]
        self.emb_norm = (w("embeddings.LayerNorm.weight"), w("embeddings.LayerNorm.bias"))
        self.layers = [layer_weights(w, f"encoder.layer.{i}.") for i in range(int(config["num_hidden_layers"]))]
        self._centroid: np.ndarray | None = None

    def embed_query(self, text: str) -> np.ndarray:
        return self.embed_queries([text])[0]

    def embed_queries(self, texts: list[str] | tuple[str, ...]) -> np.ndarray:
        """L2-normalised float32 vectors, one per text (batched by 32)."""
        out = [self._encode(list(texts[i : i + 32])) for i in range(0, len(texts), 32)]
        return np.concatenate(out) if out else np.zeros((0, self.positions.shape[1]), dtype=np.float32)

    def english_question_centroid(self) -> np.ndarray:
        """See `question_centroid`; computed once, and kept beside the model."""
        if self._centroid is None:
            self._centroid = question_centroid(self.embed_queries, self.folder)
        return self._centroid

    def _encode(self, texts: list[str]) -> np.ndarray:
        states, batch = self._states(texts, self.prompt)
        return self._pool(states, batch)

    @staticmethod
    def _pool(states: np.ndarray, batch: Batch) -> np.ndarray:
        mask = batch.attention_mask.astype(np.float32)
        pooled = (states * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
        pooled /= np.linalg.norm(pooled, axis=1, keepdims=True).clip(1e-12)
        return pooled.astype(np.float32)

    def embed_chunks(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]) -> list[ChunkEmbedding]:
        """What `rag.embed.Embedder.embed_chunks` computes (the document prompt, a vector per chunk and per
        sentence), without torch: for a build of a few chunks, where importing torch would cost more than the
        encoding (tests/test_model.py holds the two to cosine 0.9999)."""
        out: list[ChunkEmbedding] = []
        for i in range(0, len(texts), 8):
            states, batch = self._states(list(texts[i : i + 8]), self.document_prompt)
            out += chunk_embeddings(self._pool(states, batch), states, batch, spans[i : i + 8])
        return out

    def _states(self, texts: list[str], prompt: str) -> tuple[np.ndarray, Batch]:
        """The last layer's token states [batch, length, dim] and the tokenised batch."""
        batch = self.tokens.encode(texts, prompt)
        return self.run(batch, self.layers), batch

    def run(self, batch: Batch, layers: Sequence[tuple]) -> np.ndarray:
        """The token states [batch, length, dim] after `layers` (`layer_weights` tuples) over the embeddings."""
        ids, mask = batch.input_ids, batch.attention_mask.astype(np.float32)
        n, length = ids.shape
        x = self.words[ids].astype(np.float32) + self.positions[:length] + self.token_type
        hidden = x.shape[-1]
        x = _layer_norm(x.reshape(n * length, hidden), *self.emb_norm, self.eps)  # rows are tokens from here on
        d = hidden // self.heads
        bias = ((1.0 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(d))
        for qkv, qkv_b, ao, ao_b, ln1, fi, fi_b, fo, fo_b, ln2 in layers:
            heads = (x @ qkv + qkv_b).reshape(n, length, 3, self.heads, d).transpose(2, 0, 3, 1, 4)
            q, k, v = heads[0], heads[1], heads[2]
            scores = (q * scale) @ k.transpose(0, 1, 3, 2) + bias
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            context = ((scores / scores.sum(-1, keepdims=True)) @ v).transpose(0, 2, 1, 3).reshape(n * length, hidden)
            x = _layer_norm(context @ ao + ao_b + x, *ln1, self.eps)
            inner = x @ fi + fi_b
            inner = 0.5 * inner * (1.0 + _erf(inner * np.float32(1.0 / np.sqrt(2.0))))
            x = _layer_norm(inner @ fo + fo_b + x, *ln2, self.eps)
        return x.reshape(n, length, hidden)
