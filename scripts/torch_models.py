#!/usr/bin/python3
"""Reference PyTorch models for paratrain (golden fixtures and the PyTorch benchmark).

Written from scratch to mirror Hugging Face semantics and parameter names exactly, so that
``state_dict()`` keys equal the names in a Hugging Face checkpoint (minus tied duplicates):

* ``BertForPreTraining``: post-LN encoder, GELU (erf), LayerNorm eps 1e-12, MLM head whose decoder
  weight is tied to ``bert.embeddings.word_embeddings.weight`` and whose bias is
  ``cls.predictions.bias``; NSP head on the tanh pooler output.
* ``GPT2LMHeadModel``: pre-LN decoder, GELU (tanh, "gelu_new"), LayerNorm eps 1e-5, Conv1D layers
  (weight [in, out], y = x @ W + b), causal attention, LM head tied to ``transformer.wte.weight``.

Also contains a tiny safetensors reader/writer (F32/F64/I32/I64, numpy based) so no extra package
is needed. Run with Debian's /usr/bin/python3 (torch 1.13 + numpy).
"""

from __future__ import annotations

import json
import math
import struct
from collections import OrderedDict
from dataclasses import dataclass
from typing import Dict, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100
# Additive attention-mask value used by Hugging Face: torch.finfo(float32).min (also in float64 runs,
# as the brief for the golden fixtures asks).
MASK_MIN = float(torch.finfo(torch.float32).min)

# --------------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------------

_ST_DTYPES = {
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I32": np.dtype("<i4"),
    "I64": np.dtype("<i8"),
}
_KIND_TO_ST = {("f", 4): "F32", ("f", 8): "F64", ("i", 4): "I32", ("i", 8): "I64"}


def _to_numpy(t, dtype: Optional[str]) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        t = t.detach().cpu().numpy()
    a = np.asarray(t)
    if dtype is not None:
        a = a.astype(_ST_DTYPES[dtype])
    return a


def save_safetensors(path: str, tensors: Mapping[str, object], dtype: Optional[str] = None,
                     metadata: Optional[Mapping[str, str]] = None) -> None:
    """Write ``tensors`` (name -> torch.Tensor / numpy array) to a safetensors file.

    ``dtype`` ("F32", "I32", ...) converts every tensor; otherwise each tensor keeps its own dtype
    (which must be one of F32/F64/I32/I64). Tensors are written in sorted-name order.
    """
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        a = _to_numpy(tensors[name], dtype)
        key = (a.dtype.kind, a.dtype.itemsize)
        if key not in _KIND_TO_ST:
            raise TypeError(f"{name}: unsupported dtype {a.dtype}")
        st = _KIND_TO_ST[key]
        raw = np.ascontiguousarray(a.astype(_ST_DTYPES[st], copy=False)).tobytes()
        header[name] = {"dtype": st, "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    hdr = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hdr += b" " * ((-len(hdr)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hdr)))
        f.write(hdr)
        for b in blobs:
            f.write(b)


def load_safetensors(path: str, with_metadata: bool = False):
    """Read a safetensors file into an OrderedDict name -> numpy array (file order)."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    base = 8 + n
    meta = header.pop("__metadata__", {})
    out = OrderedDict()
    for name, info in sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0]):
        dt = _ST_DTYPES[info["dtype"]]
        b, e = info["data_offsets"]
        a = np.frombuffer(data[base + b:base + e], dtype=dt).reshape(info["shape"]).copy()
        out[name] = a
    return (out, meta) if with_metadata else out


# --------------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------------


def gelu_erf(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x)


def gelu_tanh_explicit(x: torch.Tensor) -> torch.Tensor:
    # "gelu_new": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


try:
    F.gelu(torch.zeros(1), approximate="tanh")
    _HAS_GELU_TANH = True
except TypeError:  # torch < 1.12
    _HAS_GELU_TANH = False


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2 "gelu_new" (same formula as gelu_tanh_explicit, fused kernel when available)."""
    if _HAS_GELU_TANH:
        return F.gelu(x, approximate="tanh")
    return gelu_tanh_explicit(x)


_HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def has_sdpa() -> bool:
    return _HAS_SDPA


# --------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    initializer_range: float = 0.02

    def hf_config(self) -> dict:
        return {
            "architectures": ["BertForPreTraining"],
            "model_type": "bert",
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": "gelu",
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": self.initializer_range,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": 0,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        }


class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids) \
            + self.position_embeddings(pos)[None]
        return self.dropout(self.LayerNorm(x))


class BertSelfAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        assert c.hidden_size % c.num_attention_heads == 0
        self.n_head = c.num_attention_heads
        self.head_dim = c.hidden_size // c.num_attention_heads
        self.query = nn.Linear(c.hidden_size, c.hidden_size)
        self.key = nn.Linear(c.hidden_size, c.hidden_size)
        self.value = nn.Linear(c.hidden_size, c.hidden_size)
        self.dropout = nn.Dropout(c.attention_probs_dropout_prob)

    def _heads(self, x):
        B, T, _ = x.shape
        return x.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # [B, nh, T, hd]

    def forward(self, x, ext_mask):
        B, T, H = x.shape
        q, k, v = self._heads(self.query(x)), self._heads(self.key(x)), self._heads(self.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
        if ext_mask is not None:
            scores = scores + ext_mask  # [B, 1, 1, T]
        probs = self.dropout(torch.softmax(scores, dim=-1))
        ctx = torch.matmul(probs, v)
        return ctx.transpose(1, 2).reshape(B, T, H)


class BertSelfOutput(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.self = BertSelfAttention(c)
        self.output = BertSelfOutput(c)

    def forward(self, x, ext_mask):
        return self.output(self.self(x, ext_mask), x)


class BertIntermediate(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.intermediate_size)

    def forward(self, x):
        return gelu_erf(self.dense(x))


class BertOutput(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h, residual):
        return self.LayerNorm(self.dropout(self.dense(h)) + residual)


class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = BertIntermediate(c)
        self.output = BertOutput(c)

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.output(self.intermediate(a), a)


class BertEncoder(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.layer = nn.ModuleList([BertLayer(c) for _ in range(c.num_hidden_layers)])

    def forward(self, x, ext_mask):
        for l in self.layer:
            x = l(x, ext_mask)
        return x


class BertPooler(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)

    def forward(self, x):
        return torch.tanh(self.dense(x[:, 0]))


class BertModel(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.embeddings = BertEmbeddings(c)
        self.encoder = BertEncoder(c)
        self.pooler = BertPooler(c)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        ext = None
        if attention_mask is not None:
            dt = self.embeddings.word_embeddings.weight.dtype
            ext = (1.0 - attention_mask[:, None, None, :].to(dt)) * MASK_MIN
        seq = self.encoder(self.embeddings(input_ids, token_type_ids), ext)
        return seq, self.pooler(seq)


class BertPredictionHeadTransform(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x):
        return self.LayerNorm(gelu_erf(self.dense(x)))


class BertLMPredictionHead(nn.Module):
    """cls.predictions: transform, then decoder = F.linear(x, word_embeddings.weight, bias)."""

    def __init__(self, c: BertConfig):
        super().__init__()
        self.transform = BertPredictionHeadTransform(c)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, x, decoder_weight):
        return F.linear(self.transform(x), decoder_weight, self.bias)


class BertPreTrainingHeads(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.predictions = BertLMPredictionHead(c)
        self.seq_relationship = nn.Linear(c.hidden_size, 2)


@dataclass
class BertOutputs:
    logits: torch.Tensor          # [B, T, V] (or [N, V] at labelled positions if mlm_positions_only)
    nsp_logits: torch.Tensor      # [B, 2]
    loss: Optional[torch.Tensor] = None
    mlm_loss: Optional[torch.Tensor] = None
    nsp_loss: Optional[torch.Tensor] = None


class BertForPreTraining(nn.Module):
    def __init__(self, c: BertConfig, mlm_positions_only: bool = False):
        super().__init__()
        self.config = c
        self.mlm_positions_only = mlm_positions_only
        self.bert = BertModel(c)
        self.cls = BertPreTrainingHeads(c)
        self.init_weights()

    def init_weights(self):
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, 0.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.cls.predictions.bias)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                next_sentence_label=None) -> BertOutputs:
        seq, pooled = self.bert(input_ids, token_type_ids, attention_mask)
        V = self.config.vocab_size
        wte = self.bert.embeddings.word_embeddings.weight
        if self.mlm_positions_only and labels is not None:
            # NVIDIA-style: only run transform + decoder where a label exists (same loss).
            flat_labels = labels.reshape(-1)
            idx = (flat_labels != IGNORE_INDEX).nonzero(as_tuple=False).squeeze(1)
            h = seq.reshape(-1, seq.shape[-1]).index_select(0, idx)
            logits = self.cls.predictions(h, wte)                      # [N, V]
            mlm_loss = F.cross_entropy(logits, flat_labels.index_select(0, idx).long())
        else:
            logits = self.cls.predictions(seq, wte)                    # [B, T, V]
            mlm_loss = None
            if labels is not None:
                mlm_loss = F.cross_entropy(logits.reshape(-1, V), labels.reshape(-1).long(),
                                           ignore_index=IGNORE_INDEX)
        nsp_logits = self.cls.seq_relationship(pooled)
        nsp_loss = None
        if next_sentence_label is not None:
            nsp_loss = F.cross_entropy(nsp_logits, next_sentence_label.reshape(-1).long())
        loss = None
        if mlm_loss is not None and nsp_loss is not None:
            loss = mlm_loss + nsp_loss
        elif mlm_loss is not None:
            loss = mlm_loss
        return BertOutputs(logits, nsp_logits, loss, mlm_loss, nsp_loss)


# --------------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------------


@dataclass
class GPT2Config:
    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: Optional[int] = None
    layer_norm_epsilon: float = 1e-5
    embd_pdrop: float = 0.1
    attn_pdrop: float = 0.1
    resid_pdrop: float = 0.1
    initializer_range: float = 0.02

    @property
    def inner(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    def hf_config(self) -> dict:
        return {
            "architectures": ["GPT2LMHeadModel"],
            "model_type": "gpt2",
            "vocab_size": self.vocab_size,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": self.inner,
            "n_positions": self.n_positions,
            "n_ctx": self.n_positions,
            "activation_function": "gelu_new",
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "embd_pdrop": self.embd_pdrop,
            "attn_pdrop": self.attn_pdrop,
            "resid_pdrop": self.resid_pdrop,
            "initializer_range": self.initializer_range,
            "scale_attn_weights": True,
            "tie_word_embeddings": True,
            "torch_dtype": "float32",
        }


class Conv1D(nn.Module):
    """HF GPT-2 Conv1D: weight [in, out], y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x):
        shp = x.shape[:-1] + (self.weight.shape[1],)
        return torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight).view(shp)


class GPT2Attention(nn.Module):
    def __init__(self, c: GPT2Config, use_sdpa: bool):
        super().__init__()
        self.n_head = c.n_head
        self.head_dim = c.n_embd // c.n_head
        self.c_attn = Conv1D(c.n_embd, 3 * c.n_embd)
        self.c_proj = Conv1D(c.n_embd, c.n_embd)
        self.attn_dropout = nn.Dropout(c.attn_pdrop)
        self.resid_dropout = nn.Dropout(c.resid_pdrop)
        self.use_sdpa = use_sdpa and _HAS_SDPA
        P = c.n_positions
        self.register_buffer("causal", torch.tril(torch.ones(P, P, dtype=torch.bool)).view(1, 1, P, P),
                             persistent=False)

    def forward(self, x):
        B, T, H = x.shape
        q, k, v = self.c_attn(x).split(H, dim=2)
        q, k, v = (t.view(B, T, self.n_head, self.head_dim).transpose(1, 2) for t in (q, k, v))
        if self.use_sdpa:
            ctx = F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.attn_dropout.p if self.training else 0.0, is_causal=True)
        else:
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head_dim)
            mask = self.causal[:, :, :T, :T]
            scores = torch.where(mask, scores, torch.full((), MASK_MIN, dtype=scores.dtype))
            probs = self.attn_dropout(torch.softmax(scores, dim=-1))
            ctx = torch.matmul(probs, v)
        ctx = ctx.transpose(1, 2).reshape(B, T, H)
        return self.resid_dropout(self.c_proj(ctx))


class GPT2MLP(nn.Module):
    def __init__(self, c: GPT2Config):
        super().__init__()
        self.c_fc = Conv1D(c.n_embd, c.inner)
        self.c_proj = Conv1D(c.inner, c.n_embd)
        self.dropout = nn.Dropout(c.resid_pdrop)

    def forward(self, x):
        return self.dropout(self.c_proj(gelu_tanh(self.c_fc(x))))


class GPT2Block(nn.Module):
    def __init__(self, c: GPT2Config, use_sdpa: bool):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)
        self.attn = GPT2Attention(c, use_sdpa)
        self.ln_2 = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)
        self.mlp = GPT2MLP(c)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2Model(nn.Module):
    def __init__(self, c: GPT2Config, use_sdpa: bool):
        super().__init__()
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.n_positions, c.n_embd)
        self.drop = nn.Dropout(c.embd_pdrop)
        self.h = nn.ModuleList([GPT2Block(c, use_sdpa) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd, eps=c.layer_norm_epsilon)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        x = self.drop(self.wte(input_ids) + self.wpe(pos)[None])
        for blk in self.h:
            x = blk(x)
        return self.ln_f(x)


@dataclass
class GPT2Outputs:
    logits: torch.Tensor
    loss: Optional[torch.Tensor] = None


class GPT2LMHeadModel(nn.Module):
    def __init__(self, c: GPT2Config, use_sdpa: bool = True):
        super().__init__()
        self.config = c
        self.transformer = GPT2Model(c, use_sdpa)
        self.init_weights()

    def init_weights(self):
        std = self.config.initializer_range
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding, Conv1D)):
                nn.init.normal_(m.weight, 0.0, std)
                if getattr(m, "bias", None) is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        proj_std = std / math.sqrt(2 * self.config.n_layer)
        for blk in self.transformer.h:
            nn.init.normal_(blk.attn.c_proj.weight, 0.0, proj_std)
            nn.init.normal_(blk.mlp.c_proj.weight, 0.0, proj_std)

    def forward(self, input_ids, labels=None) -> GPT2Outputs:
        """``labels`` are already shifted: labels[b, t] is the target for position t (-100 = none)."""
        h = self.transformer(input_ids)
        logits = F.linear(h, self.transformer.wte.weight)  # lm_head tied to wte
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long(),
                                   ignore_index=IGNORE_INDEX)
        return GPT2Outputs(logits, loss)


def hf_state_dict(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """Parameters under Hugging Face names, without tied duplicates (decoder / lm_head)."""
    return OrderedDict((n, p) for n, p in model.named_parameters())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
