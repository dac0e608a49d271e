"""Train the short-answer reader (`rag.reader`): the model's top layers and a start/end head, from the tuning data.

Usage: python -m bench.train_reader [--shared ../shared] [--out models/reader] [--layers 6] [--epochs 4]

The reader reads "query: <question> passage: <quote>" with the embedding model and points at the answer's first
and last token (or at the first token, for "not here"). The lower layers stay the embedding model's own, so only the
top `--layers` and the head are trained and written (about 7 MB per layer, safetensors). Its data is the tuning
side of every benchmark, never a test half:
- ARCD train, and the even half of ARCD-test (the bench reports the odd half);
- XQuAD's first quarter of articles, English and Arabic questions (quarter 1 is kept back to calibrate the reader's
  gate; quarters 2 and 3 are the test half).
Each question is read in a window of whole sentences around its answer, and half of them also in a window of the
same paragraph without it, where the answer is "not here". Seeded: the same data and seed give the same weights.
Torch and a few minutes on two cores; the product itself reads the weights in numpy.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.calibrate import xquad_quarter
from bench.data import arcd, data_dir, read_jsonl
from rag.chunking import split_sentences
from rag.reader import READER_FILE, prompt_for
from rag.settings import PROJECT_ROOT, Settings
from rag.tokens import Tokens

MAX_TOKENS = 256


@dataclass
class Example:
    question: str
    passage: str
    start: int  # the answer's characters in `passage`; -1 when it is not there
    end: int


def _window(text: str, a: int, b: int, rng: random.Random, max_chars: int = 700) -> tuple[int, int]:
    """Whole sentences of `text` around text[a:b], a random few on each side, within `max_chars` where it can."""
    spans = split_sentences(text)
    first = next((i for i, s in enumerate(spans) if s.end > a), len(spans) - 1)
    last = next((i for i, s in enumerate(spans) if s.end >= b), len(spans) - 1)
    lo, hi = first - rng.randint(0, 2), last + rng.randint(0, 2)
    lo, hi = max(0, lo), min(len(spans) - 1, hi)
    while hi > last and spans[hi].end - spans[lo].start > max_chars:
        hi -= 1
    while lo < first and spans[hi].end - spans[lo].start > max_chars:
        lo += 1
    return spans[lo].start, spans[hi].end


def examples_from(question: str, context: str, answer: str, start: int, rng: random.Random) -> list[Example]:
    """The question in a window holding its answer, and (every other time) in one of the same paragraph without it."""
    if context[start : start + len(answer)] != answer:
        found = context.find(answer)
        if found < 0:
            return []
        start = found
    end = start + len(answer)
    a, b = _window(context, start, end, rng)
    out = [Example(question, context[a:b], start - a, end - a)]
    outside = [s for s in split_sentences(context) if s.end <= start or s.start >= end]
    if outside and rng.random() < 0.5:
        s = rng.choice(outside)
        out.append(Example(question, context[s.start : s.end], -1, -1))
    return out


def training_examples(root: Path, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out: list[Example] = []
    rows = read_jsonl(root / "bench" / "arcd.jsonl")
    test_ids = {q.qid for q in arcd(root, "test")[1][0::2]}
    for r in rows:
        if r["split"] == "train" or r["id"] in test_ids:
            out += examples_from(r["question_ar"], r["context_ar"], r["answer_ar"], r["answer_start_ar"], rng)
    titles = {r["context_id"]: r["title"] for r in read_jsonl(root / "bench" / "xquad_contexts_ar.jsonl")}
    quarter = xquad_quarter(titles)
    for r in read_jsonl(root / "bench" / "xquad_xling.jsonl"):
        if quarter[r["context_id"]] == 0:
            for q in (r["question_ar"], r["question_en"]):
                out += examples_from(q, r["context_ar"], r["answer_ar"], r["answer_start_ar"], rng)
    rng.shuffle(out)
    return out


def tokenize(tokens: Tokens, ex: Example) -> tuple[np.ndarray, int, int, np.ndarray] | None:
    """Token ids, the answer's first and last token (0, 0 when absent) and the passage-token mask; None when the
    answer was cut off by the length limit."""
    batch = tokens.encode([ex.passage], prompt_for(ex.question))
    ids, offsets = batch.input_ids[0], batch.offsets[0]
    passage = (offsets[:, 1] > offsets[:, 0]) & (offsets[:, 0] >= 0)
    if ex.start < 0:
        return ids, 0, 0, passage
    starts = np.flatnonzero(passage & (offsets[:, 1] > ex.start))
    ends = np.flatnonzero(passage & (offsets[:, 0] < ex.end))
    if not len(starts) or not len(ends) or ends[-1] < starts[0]:
        return None
    return ids, int(starts[0]), int(ends[-1]), passage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared", default=None)
    parser.add_argument("--out", default=str(PROJECT_ROOT / "models" / "reader"))
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from bench.reader_torch import train_and_save

    root = data_dir(args.shared)
    settings = Settings.from_env()
    model = Path(settings.model)
    config = json.loads((model / "config.json").read_text())
    tokens = Tokens.from_file(model / "tokenizer.json", MAX_TOKENS)
    t0 = time.perf_counter()
    rows = [(ex, t) for ex in training_examples(root, args.seed) if (t := tokenize(tokens, ex)) is not None]
    print(f"{len(rows)} examples ({sum(ex.start >= 0 for ex, _ in rows)} with the answer)", flush=True)
    out = Path(args.out)
    train_and_save(model, config, [t for _, t in rows], out / READER_FILE, args.layers, args.epochs, args.lr, args.seed)
    minutes = (time.perf_counter() - t0) / 60
    print(f"reader written to {out / READER_FILE} in {minutes:.1f} min ({math.ceil(minutes)} min)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
