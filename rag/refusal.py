"""Whether the corpus answers a question: one calibrated decision (logistic regression) over named features.

The model is a JSON file (`rag/data/refusal.json`, RAG_REFUSAL_MODEL) holding its version, feature list,
standardisation, weights and threshold. It is fitted by `python -m bench.calibrate` on tuning data only: the news dev
set's tuning half and half of the XQuAD articles. The features are computed here and nowhere else.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from langchain_core.documents import Document

from rag.crosslingual import coverage
from rag.lexical import analyze
from rag.retrieve import SearchIndex, is_cross_lingual

MODEL_VERSION = 1
FEATURES = (
    "dense",  # best chunk cosine with the question
    "lead",  # how far the best cosine stands out from the 20 best
    "cross",  # 1 for a Latin-script question: its cosines run lower
    "cross_dense",
    "cross_lead",
    "coverage_article",  # IDF-weighted share of the question's concepts found in the best evidence's article
    "coverage_quote",  # the same in the sentences that would be quoted
    "missing_corpus",  # IDF-weighted share of the question's concepts found nowhere in the corpus
    "numbers_missing_corpus",  # share of its numbers and years that no article contains
    "keys_missing_article",  # share of the question's names and numbers missing from the best evidence's article
    "keys_missing_quote",  # the same for the sentences that would be quoted
    "sentence",  # score of the best evidence sentence (cosine in context, overlap, answer-type cue)
)


def refusal_features(index: SearchIndex, question: str, docs: list[Document], evidence: list) -> dict[str, float]:
    """The features of one question, its retrieved chunks and its scored evidence sentences (best first)."""
    concepts = index.concepts(question)
    dense = max((d.metadata["dense"] for d in docs), default=0.0)
    lead = docs[0].metadata.get("margin", 0.0) if docs else 0.0
    cross = float(is_cross_lingual(question))
    vocab = index.bm25.vocab.keys()
    if evidence:
        article = index.article_terms(evidence[0].doc_id)
        quoted = frozenset(t for e in evidence[:3] for t in analyze(e.quote))
    else:
        article = quoted = frozenset()
    numbers = [c for c in concepts if c.kind == "number"]
    return {
        "dense": dense,
        "lead": lead,
        "cross": cross,
        "cross_dense": cross * dense,
        "cross_lead": cross * lead,
        # a question with nothing to look up (only stop words) has covered nothing, not everything
        "coverage_article": coverage(concepts, article) if concepts else 0.0,
        "coverage_quote": coverage(concepts, quoted) if concepts else 0.0,
        "missing_corpus": 1.0 - coverage(concepts, vocab),
        "numbers_missing_corpus": sum(not c.found_in(vocab) for c in numbers) / len(numbers) if numbers else 0.0,
        "keys_missing_article": 1.0 - coverage(concepts, article, keys_only=True),
        "keys_missing_quote": 1.0 - coverage(concepts, quoted, keys_only=True),
        "sentence": evidence[0].score if evidence else 0.0,
    }


class RefusalModelError(RuntimeError):
    """The refusal model file is missing or not of this version; the message names the fix."""


@dataclass
class RefusalModel:
    """A logistic regression over standardised features; answer when the probability reaches `threshold`."""

    features: tuple[str, ...]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    note: str = ""

    def probability(self, features: dict[str, float]) -> float:
        z = self.intercept + sum(
            c * (features[name] - m) / s
            for name, m, s, c in zip(self.features, self.mean, self.scale, self.coef, strict=True)
        )
        return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, z))))

    def to_json(self) -> str:
        return json.dumps(
            {
                "version": MODEL_VERSION,
                "features": list(self.features),
                "mean": self.mean,
                "scale": self.scale,
                "coef": self.coef,
                "intercept": self.intercept,
                "threshold": self.threshold,
                "note": self.note,
            },
            indent=2,
        )

    @classmethod
    def load(cls, path: str | Path) -> RefusalModel:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RefusalModelError(f"cannot read the refusal model {path} ({exc}): reinstall the project") from exc
        if data.get("version") != MODEL_VERSION or tuple(data.get("features", ())) != FEATURES:
            raise RefusalModelError(
                f"refusal model {path} is not version {MODEL_VERSION} with this project's features: "
                "refit it with `python -m bench.calibrate`"
            )
        return cls(
            tuple(data["features"]),
            [float(x) for x in data["mean"]],
            [float(x) for x in data["scale"]],
            [float(x) for x in data["coef"]],
            float(data["intercept"]),
            float(data["threshold"]),
            data.get("note", ""),
        )
