"""The reader's training in torch: the embedding model's layers as `rag.query_encoder` computes them, the top ones
trained with a start/end head, written as safetensors in the model's own tensor names."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from rag.jsoncache import temp_beside
from rag.query_encoder import read_safetensors

_NAMES = {
    "qkv": None,
    "ao": "attention.output.dense",
    "ln1": "attention.output.LayerNorm",
    "fi": "intermediate.dense",
    "fo": "output.dense",
    "ln2": "output.LayerNorm",
}


class Layer(nn.Module):
    """One post-norm BERT layer, with the same arithmetic as `rag.query_encoder.QueryEncoder._states`."""

    def __init__(self, raw: dict[str, np.ndarray], prefix: str, heads: int, eps: float, dropout: float = 0.0) -> None:
        super().__init__()

        def t(name: str) -> torch.Tensor:
            return torch.from_numpy(np.array(raw[prefix + name], dtype=np.float32))

        hidden = raw[prefix + "attention.self.query.weight"].shape[0]
        inner = raw[prefix + "intermediate.dense.weight"].shape[0]
        self.heads, self.d = heads, hidden // heads
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.ao, self.fi, self.fo = nn.Linear(hidden, hidden), nn.Linear(hidden, inner), nn.Linear(inner, hidden)
        self.ln1, self.ln2 = nn.LayerNorm(hidden, eps=eps), nn.LayerNorm(hidden, eps=eps)
        self.drop = nn.Dropout(dropout)
        with torch.no_grad():
            parts = ("query", "key", "value")
            self.qkv.weight.copy_(torch.cat([t(f"attention.self.{p}.weight") for p in parts]))
            self.qkv.bias.copy_(torch.cat([t(f"attention.self.{p}.bias") for p in parts]))
            for attr, name in _NAMES.items():
                if name:
                    getattr(self, attr).weight.copy_(t(name + ".weight"))
                    getattr(self, attr).bias.copy_(t(name + ".bias"))

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, length, hidden = x.shape
        h = self.qkv(x).view(n, length, 3, self.heads, self.d).permute(2, 0, 3, 1, 4)
        scores = (h[0] / math.sqrt(self.d)) @ h[1].transpose(-1, -2) + bias
        context = (scores.softmax(-1) @ h[2]).transpose(1, 2).reshape(n, length, hidden)
        x = self.ln1(self.drop(self.ao(context)) + x)
        return self.ln2(self.drop(self.fo(nn.functional.gelu(self.fi(x)))) + x)

    def state(self, prefix: str) -> dict[str, torch.Tensor]:
        """Its weights under the model's own names (query, key and value apart again)."""
        out = {}
        for i, p in enumerate(("query", "key", "value")):
            size = self.qkv.weight.shape[1]
            out[f"{prefix}attention.self.{p}.weight"] = self.qkv.weight[i * size : (i + 1) * size]
            out[f"{prefix}attention.self.{p}.bias"] = self.qkv.bias[i * size : (i + 1) * size]
        for attr, name in _NAMES.items():
            if name:
                out[f"{prefix}{name}.weight"] = getattr(self, attr).weight
                out[f"{prefix}{name}.bias"] = getattr(self, attr).bias
        return {k: v.detach().contiguous().clone() for k, v in out.items()}


def _bias(mask: torch.Tensor) -> torch.Tensor:
    return ((1.0 - mask) * torch.finfo(torch.float32).min)[:, None, None, :]


def _pad(rows: list, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    length = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), length))
    allowed = torch.zeros((len(rows), length), dtype=torch.bool)
    for i, (tok, _, _, passage) in enumerate(rows):
        ids[i, : len(tok)] = torch.from_numpy(tok)
        mask[i, : len(tok)] = 1
        allowed[i, : len(tok)] = torch.from_numpy(passage)
        allowed[i, 0] = True  # "not here"
    return ids, mask, allowed


@torch.no_grad()
def lower_states(raw: dict, prefix: str, config: dict, rows: list, first_trained: int, pad_id: int) -> list:
    """Each example's token states after the frozen layers (float16, unpadded), batched by length."""
    heads, eps = int(config["num_attention_heads"]), float(config["layer_norm_eps"])
    layers = [Layer(raw, f"{prefix}encoder.layer.{i}.", heads, eps) for i in range(first_trained)]
    words = raw[prefix + "embeddings.word_embeddings.weight"]
    positions = torch.from_numpy(np.array(raw[prefix + "embeddings.position_embeddings.weight"], dtype=np.float32))
    token_type = torch.from_numpy(np.array(raw[prefix + "embeddings.token_type_embeddings.weight"][0], np.float32))
    norm = nn.LayerNorm(positions.shape[1], eps=eps)
    norm.weight.copy_(torch.from_numpy(np.array(raw[prefix + "embeddings.LayerNorm.weight"], np.float32)))
    norm.bias.copy_(torch.from_numpy(np.array(raw[prefix + "embeddings.LayerNorm.bias"], np.float32)))
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    out: list = [None] * len(rows)
    for b in range(0, len(order), 32):
        part = [rows[i] for i in order[b : b + 32]]
        ids, mask, _ = _pad(part, pad_id)
        x = torch.from_numpy(np.asarray(words[ids.numpy()], dtype=np.float32))
        x = norm(x + positions[: ids.shape[1]] + token_type)
        for layer in layers:
            x = layer(x, _bias(mask))
        for i, j in enumerate(order[b : b + 32]):
            out[j] = x[i, : len(rows[j][0])].half()
        if b % 640 == 0:
            print(f"  lower layers: {b}/{len(rows)}", flush=True)
    return out


def train_and_save(
    model: Path, config: dict, rows: list, out: Path, n_layers: int, epochs: int, lr: float, seed: int
) -> None:
    torch.manual_seed(seed)
    raw = read_safetensors(model / "model.safetensors")
    prefix = "" if "embeddings.word_embeddings.weight" in raw else "bert."
    total = int(config["num_hidden_layers"])
    first = total - n_layers
    pad_id = int(config.get("pad_token_id", 1))
    states = lower_states(raw, prefix, config, rows, first, pad_id)
    heads, eps = int(config["num_attention_heads"]), float(config["layer_norm_eps"])
    top = nn.ModuleList([Layer(raw, f"{prefix}encoder.layer.{i}.", heads, eps, 0.1) for i in range(first, total)])
    head = nn.Linear(int(config["hidden_size"]), 2)
    opt = torch.optim.AdamW(
        [{"params": top.parameters(), "lr": lr}, {"params": head.parameters(), "lr": lr * 10}], weight_decay=0.01
    )
    rng = random.Random(seed)
    batches = _batches(rows, 16, rng, epochs)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: max(0.0, 1 - step / max(1, len(batches))))
    for step, part in enumerate(batches):
        _, mask, allowed = _pad([rows[i] for i in part], pad_id)
        length = mask.shape[1]
        x = torch.zeros((len(part), length, head.in_features))
        for i, j in enumerate(part):
            x[i, : len(states[j])] = states[j].float()
        for layer in top:
            x = layer(x, _bias(mask))
        logits = head(x).masked_fill(~allowed[:, :, None], -1e4)
        starts = torch.tensor([rows[j][1] for j in part])
        ends = torch.tensor([rows[j][2] for j in part])
        loss = (
            nn.functional.cross_entropy(logits[:, :, 0], starts) + nn.functional.cross_entropy(logits[:, :, 1], ends)
        ) / 2
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(list(top.parameters()) + list(head.parameters()), 1.0)
        opt.step()
        sched.step()
        if step % 50 == 0:
            print(f"  step {step}/{len(batches)} loss {loss.item():.3f}", flush=True)
    tensors = {k: v for i, layer in enumerate(top) for k, v in layer.state(f"encoder.layer.{first + i}.").items()}
    tensors["qa.weight"], tensors["qa.bias"] = head.weight.detach().clone(), head.bias.detach().clone()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_beside(out)
    save_file(tensors, str(tmp), metadata={"first_trained_layer": str(first), "seed": str(seed)})
    tmp.replace(out)


def _batches(rows: list, size: int, rng: random.Random, epochs: int) -> list[list[int]]:
    """Batches of similar length (less padding), shuffled, `epochs` times over."""
    out = []
    for _ in range(epochs):
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]) + rng.random() * 8)
        epoch = [order[i : i + size] for i in range(0, len(order), size)]
        rng.shuffle(epoch)
        out += epoch
    return out
