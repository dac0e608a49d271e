"""Is OpenVINO worth its dependency over torch bf16? Both encode the same chunks in one run; parity and speed.

OpenVINO is not a dependency of this project: `make bench-openvino` installs it into bench/work/openvino (a wheel
of about 60 MB, 180 MB installed) and runs this. The model is converted in memory from the same torch module
(`openvino.convert_model`), fed by the same one-pass tokenizer, and pooled as sentence-transformers pools.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from rag.embed import Embedder
from rag.settings import Settings


def _chunks(n: int) -> list[str]:
    from bench.data import data_dir, xquad

    contexts, *_ = xquad(data_dir(None))
    return [c[:400] for c in list(contexts.values())[:n]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=192, help="XQuAD paragraphs, cut to 400 characters")
    args = parser.parse_args(argv)
    try:
        import openvino as ov
        import torch
    except ImportError:
        print("openvino is not installed: run `make bench-openvino`", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    texts = _chunks(args.chunks)
    spans = [[(0, len(t))] for t in texts]
    out: dict = {"chunks": len(texts), "openvino": ov.__version__}
    reference = None
    for precision in ("fp32", "bf16"):
        emb = Embedder(str(settings.model), precision)
        emb.embed_chunks(texts[:32], spans[:32])
        t0 = time.perf_counter()
        vecs = np.stack(
            [c.vector for i in range(0, len(texts), 32) for c in emb.embed_chunks(texts[i : i + 32], spans[i : i + 32])]
        )
        out[f"torch {precision} (chunks/s)"] = len(texts) / (time.perf_counter() - t0)
        reference = vecs if reference is None else reference
    bert = emb.model[0].auto_model.float().eval()
    sample = emb.tokens.encode(texts[:2], emb.document_prompt)
    example = {
        "input_ids": torch.from_numpy(sample.input_ids),
        "attention_mask": torch.from_numpy(sample.attention_mask),
    }
    with torch.no_grad():
        converted = ov.convert_model(bert, example_input=example)
    core = ov.Core()
    for hint in ("f32", "bf16"):
        compiled = core.compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": 2})

        def encode(batch_texts: list[str], compiled=compiled) -> np.ndarray:
            b = emb.tokens.encode(batch_texts, emb.document_prompt)
            states = compiled({"input_ids": b.input_ids, "attention_mask": b.attention_mask})[0]
            mask = b.attention_mask[:, :, None].astype(np.float32)
            pooled = (states * mask).sum(1) / mask.sum(1)
            return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)

        encode(texts[:32])
        t0 = time.perf_counter()
        vecs = np.concatenate([encode(texts[i : i + 32]) for i in range(0, len(texts), 32)])
        out[f"openvino {hint} (chunks/s)"] = len(texts) / (time.perf_counter() - t0)
        out[f"openvino {hint} vs torch fp32 min cosine"] = float((vecs * reference).sum(1).min())
    out["openvino bf16 / torch bf16"] = out["openvino bf16 (chunks/s)"] / out["torch bf16 (chunks/s)"]
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
