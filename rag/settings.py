"""All settings in one place: read from RAG_* environment variables, with documented defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class UserError(RuntimeError):
    """A problem a user can fix, whose message names the fix: the CLI prints it as one line. The index's, the
    model's, the refusal model's and Ray's errors are its subclasses (here, so catching them imports nothing)."""


@dataclass(frozen=True)
class Settings:
    """Every tunable of the pipeline. `Settings.from_env()` reads the RAG_* variables below."""

    seeds_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "seeds")  # RAG_SEEDS_DIR
    index_dir: Path = field(default_factory=lambda: PROJECT_ROOT / "index")  # RAG_INDEX_DIR
    model: str = str(PROJECT_ROOT / "models" / "multilingual-e5-small")  # RAG_MODEL: folder or hub id
    # RAG_READER: folder of the short-answer reader's weights (`make reader`); without them, recognisers only
    reader: Path = field(default_factory=lambda: PROJECT_ROOT / "models" / "reader")
    chunk_chars: int = 400  # RAG_CHUNK_CHARS: a chunk holds whole sentences up to this many characters
    chunk_overlap: int = 1  # RAG_CHUNK_OVERLAP: sentences shared by neighbouring chunks
    batch_size: int = 32  # RAG_BATCH_SIZE: texts per embedding batch
    precision: str = "auto"  # RAG_PRECISION: auto (fp32 or bf16, whichever measured faster here), fp32 or bf16
    faiss_index: str = (
        "auto"  # RAG_FAISS_INDEX: auto (flat up to RAG_FAISS_AUTO_ABOVE vectors, then hnsw), flat, hnsw, ivf
    )
    # RAG_FAISS_AUTO_ABOVE: where auto switches from exact to approximate search. At 136k SaudiNewsNet chunks HNSW
    # answered English questions in 60 ms against 82 (p50), with the same evidence in the quotes (0.581 of 74 news
    # dev questions) and the same citations for 72 of them.
    faiss_auto_above: int = 100_000
    ray_actors: int = 0  # RAG_RAY_ACTORS: embedding actors for `rag index --ray` (0: one per GPU, else one per core)
    top_k: int = 5  # RAG_TOP_K: chunks handed to the answerer
    candidates: int = 100  # RAG_CANDIDATES: chunks (dense) and articles (BM25) proposed before fusion
    lexical_weight: float = 0.15  # RAG_LEXICAL_WEIGHT: weight of an article's max-normalised BM25 score
    query_centering: float = (
        0.5  # RAG_QUERY_CENTERING: share of the English-question mean taken out of a Latin-script question
    )
    lexical_weight_cross: float = 0.05  # RAG_LEXICAL_WEIGHT_CROSS: the same for a Latin-script question's translation
    time_weight: float = 0.3  # RAG_TIME_WEIGHT: bonus for an article that fits a day the question names (0..1 fit)
    recency_weight: float = 0.1  # RAG_RECENCY_WEIGHT: bonus for the newest candidate of a "latest" question
    lexicon: Path = Path("/usr/share/dictd")  # RAG_LEXICON: folder with FreeDict's freedict-eng-ara.index/.dict.dz
    lexicon_cache: Path = field(default_factory=lambda: PROJECT_ROOT / "models" / "lexicon")  # RAG_LEXICON_CACHE
    max_translations: int = 6  # RAG_MAX_TRANSLATIONS: Arabic alternatives kept per English word
    refusal_model: Path = field(
        default_factory=lambda: PROJECT_ROOT / "rag" / "data" / "refusal.json"
    )  # RAG_REFUSAL_MODEL
    max_sentences: int = 3  # RAG_MAX_SENTENCES: citations in an answer (touching sentences share one)
    max_quoted: int = 5  # RAG_MAX_QUOTED: sentences quoted in an answer, at most
    quote_chars: int = 300  # RAG_QUOTE_CHARS: a longer quote is cut to its clauses around the answer (0: never)
    max_question_chars: int = 2000  # RAG_MAX_QUESTION_CHARS: longer questions are truncated
    max_upload_bytes: int = 2_000_000  # RAG_MAX_UPLOAD_BYTES: per uploaded file in the web chat
    max_upload_articles: int = 2000  # RAG_MAX_UPLOAD_ARTICLES: articles in one upload of the web chat, at most
    max_queued_uploads: int = 2  # RAG_MAX_QUEUED_UPLOADS: uploads waiting while one is indexed; more are refused
    max_seed_files: int = 10_000  # RAG_MAX_SEED_FILES: more new files in seeds/ need `rag index --yes`
    auth: str = ""  # RAG_AUTH: user:password; required (or --read-only) to serve beyond 127.0.0.1
    api_key: str = ""  # RAG_API_KEY: bearer key for /v1 and /mcp; off 127.0.0.1 they need it (or --read-only)
    llm_url: str = ""  # RAG_LLM_URL: an OpenAI-compatible base URL (Ollama: http://127.0.0.1:11434/v1); empty: no LLM
    llm_model: str = "qwen2.5:7b-instruct"  # RAG_LLM_MODEL: the model name the server knows
    llm_api_key: str = ""  # RAG_LLM_API_KEY: sent as the bearer token, where the server wants one
    llm_timeout: float = 60.0  # RAG_LLM_TIMEOUT: seconds for one LLM call, then the extractive answer is shown
    llm_passages: int = 5  # RAG_LLM_PASSAGES: retrieved chunks given to the LLM, at most
    llm_support: float = 0.809  # RAG_LLM_SUPPORT: support score (cosine + overlap) a cited sentence must reach
    host: str = "127.0.0.1"  # RAG_HOST
    port: int = 7860  # RAG_PORT

    @classmethod
    def from_env(cls, **overrides: object) -> Settings:
        """Defaults, overridden by RAG_<FIELD> environment variables, overridden by keyword arguments."""
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = os.environ.get(f"RAG_{f.name.upper()}")
            if raw is None:
                continue
            kind = f.type if isinstance(f.type, str) else f.type.__name__
            try:
                values[f.name] = (
                    Path(raw)
                    if "Path" in kind
                    else int(raw)
                    if kind == "int"
                    else (float(raw) if kind == "float" else raw)
                )
            except ValueError as exc:
                raise ValueError(f"RAG_{f.name.upper()}={raw!r} is not a valid {kind}") from exc
        values.update({k: v for k, v in overrides.items() if v is not None})
        for key in ("seeds_dir", "index_dir", "lexicon", "lexicon_cache", "refusal_model", "reader"):
            if key in values:
                values[key] = Path(values[key])  # type: ignore[arg-type]
        return replace(cls(), **values)
