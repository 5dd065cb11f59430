#!/usr/bin/python3
"""Reference PyTorch models for paratrain (golden fixtures and the PyTorch benchmark).

Written from scratch to mirror Hugging Face semantics and parameter names exactly, so that
``state_dict()`` keys equal the names in a Hugging Face checkpoint (minus tied duplicates):

* ``BertForPreTraining``: post-LN encoder, GELU (erf), LayerNorm eps 1e-12, MLM head whose decoder
  weight is tied to ``bert.embeddings.word_embeddings.weight`` and whose bias is
  ``cls.predictions.bias``; NSP head on the tanh pooler output.
* ``GPT2LMHeadModel``: pre-LN decoder, GELU (tanh, "gelu_new"), LayerNorm eps 1e-5, Conv1D layers
  (weight [in, out], y = x @ W + b), causal attention, LM head tied to ``transformer.wte.weight``.
* ``RobertaForMaskedLM``: BERT's encoder, LayerNorm eps 1e-5, HF position ids (padding_idx 1 +
  cumsum of non-pad tokens), MLM ``lm_head`` tied to ``roberta.embeddings.word_embeddings.weight``.
* ``AlbertForPreTraining``: factorized embeddings (E -> H), one post-LN layer shared over depth,
  "gelu_new", MLM head (H -> E, tied decoder [V, E]) and sentence-order head on the pooler.
* ``ElectraForMaskedLM`` (generator) / ``ElectraForPreTraining`` (discriminator, replaced token
  detection), and ``ElectraPretraining``: both with one shared embedding module, one step.

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
# Additive attention-mask value used by Hugging Face: torch.finfo(float32).min, also in float64 runs,
# so that the float64 fixtures mask exactly as the float32 models the engine is compared with.
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


# --------------------------------------------------------------------------------------------------
# helpers shared by RoBERTa / ALBERT / ELECTRA
# --------------------------------------------------------------------------------------------------

ACTIVATIONS = {"gelu": gelu_erf, "gelu_new": gelu_tanh}


def extended_attention_mask(attention_mask: Optional[torch.Tensor], dtype) -> Optional[torch.Tensor]:
    """[B, T] 1/0 mask -> additive [B, 1, 1, T] mask (0 / MASK_MIN), as Hugging Face builds it."""
    if attention_mask is None:
        return None
    return (1.0 - attention_mask[:, None, None, :].to(dtype)) * MASK_MIN


def init_hf_weights_(model: nn.Module, std: float) -> None:
    """HF ``_init_weights``: Linear / Embedding ~ N(0, std), biases 0, LayerNorm (1, 0), padding rows 0."""
    for m in model.modules():
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, 0.0, std)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
            if isinstance(m, nn.Embedding) and m.padding_idx is not None:
                with torch.no_grad():
                    m.weight[m.padding_idx].zero_()
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def masked_lm_loss(logits: torch.Tensor, labels: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """Mean cross entropy over positions whose label is not -100 (HF MLM loss)."""
    if labels is None:
        return None
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long(),
                           ignore_index=IGNORE_INDEX)


@dataclass
class MaskedLMOutputs:
    logits: torch.Tensor          # [B, T, V]
    loss: Optional[torch.Tensor] = None
    mlm_loss: Optional[torch.Tensor] = None


# --------------------------------------------------------------------------------------------------
# RoBERTa (Liu et al. 2019): BERT's post-LN encoder; HF position ids; no NSP, no pooler for MLM
# --------------------------------------------------------------------------------------------------


@dataclass
class RobertaConfig(BertConfig):
    vocab_size: int = 50265
    max_position_embeddings: int = 514
    type_vocab_size: int = 1
    layer_norm_eps: float = 1e-5
    bos_token_id: int = 0
    pad_token_id: int = 1
    eos_token_id: int = 2

    def hf_config(self) -> dict:
        # BERT's keys, with RoBERTa's class, token ids and the two keys its configs add.
        return {
            **super().hf_config(),
            "architectures": ["RobertaForMaskedLM"],
            "model_type": "roberta",
            "bos_token_id": self.bos_token_id,
            "pad_token_id": self.pad_token_id,
            "eos_token_id": self.eos_token_id,
            "classifier_dropout": None,
            "use_cache": True,
        }


def roberta_position_ids(input_ids: torch.Tensor, padding_idx: int) -> torch.Tensor:
    """HF ``create_position_ids_from_input_ids``: padding_idx + cumsum(non-pad), pads -> padding_idx.

    With right padding real token t gets row t + padding_idx + 1 (= t + 2 for RoBERTa).
    """
    mask = (input_ids != padding_idx).long()
    return torch.cumsum(mask, dim=1) * mask + padding_idx  # [B, T]


class RobertaEmbeddings(nn.Module):
    def __init__(self, c: RobertaConfig):
        super().__init__()
        self.padding_idx = c.pad_token_id
        self.word_embeddings = nn.Embedding(c.vocab_size, c.hidden_size, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, c.hidden_size,
                                                padding_idx=c.pad_token_id)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        pos = roberta_position_ids(input_ids, self.padding_idx)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids) \
            + self.position_embeddings(pos)
        return self.dropout(self.LayerNorm(x))


class RobertaModel(nn.Module):
    """``roberta``: embeddings + BERT encoder (same layer names); no pooler (add_pooling_layer=False)."""

    def __init__(self, c: RobertaConfig):
        super().__init__()
        self.embeddings = RobertaEmbeddings(c)
        self.encoder = BertEncoder(c)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        ext = extended_attention_mask(attention_mask, self.embeddings.word_embeddings.weight.dtype)
        return self.encoder(self.embeddings(input_ids, token_type_ids), ext)


class RobertaLMHead(nn.Module):
    """``lm_head``: dense -> gelu -> layer_norm -> decoder (weight tied to the word embeddings, bias =
    lm_head.bias; HF's lm_head.decoder.{weight,bias} are aliases and are not parameters here)."""

    def __init__(self, c: RobertaConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))

    def forward(self, x, decoder_weight):
        return F.linear(self.layer_norm(gelu_erf(self.dense(x))), decoder_weight, self.bias)


class RobertaForMaskedLM(nn.Module):
    def __init__(self, c: RobertaConfig):
        super().__init__()
        self.config = c
        self.roberta = RobertaModel(c)
        self.lm_head = RobertaLMHead(c)
        init_hf_weights_(self, c.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None) -> MaskedLMOutputs:
        seq = self.roberta(input_ids, token_type_ids, attention_mask)
        logits = self.lm_head(seq, self.roberta.embeddings.word_embeddings.weight)  # [B, T, V]
        mlm_loss = masked_lm_loss(logits, labels)
        return MaskedLMOutputs(logits, mlm_loss, mlm_loss)


# --------------------------------------------------------------------------------------------------
# ALBERT (Lan et al. 2019): factorized embeddings (E -> H), one layer shared across depth, SOP head
# --------------------------------------------------------------------------------------------------


@dataclass
class AlbertConfig(BertConfig):
    vocab_size: int = 30000
    embedding_size: int = 128
    hidden_size: int = 4096
    num_attention_heads: int = 64
    intermediate_size: int = 16384
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    hidden_act: str = "gelu_new"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    classifier_dropout_prob: float = 0.1
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int = 3

    def hf_config(self) -> dict:
        return {
            "architectures": ["AlbertForPreTraining"],
            "model_type": "albert",
            "vocab_size": self.vocab_size,
            "embedding_size": self.embedding_size,
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_hidden_groups": self.num_hidden_groups,
            "inner_group_num": self.inner_group_num,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": self.intermediate_size,
            "hidden_act": self.hidden_act,
            "hidden_dropout_prob": self.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_probs_dropout_prob,
            "classifier_dropout_prob": self.classifier_dropout_prob,
            "max_position_embeddings": self.max_position_embeddings,
            "type_vocab_size": self.type_vocab_size,
            "initializer_range": self.initializer_range,
            "layer_norm_eps": self.layer_norm_eps,
            "pad_token_id": self.pad_token_id,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "position_embedding_type": "absolute",
            "torch_dtype": "float32",
        }


class AlbertEmbeddings(nn.Module):
    """BERT-style embeddings of width embedding_size (E), absolute positions 0..T-1."""

    def __init__(self, c):
        super().__init__()
        E = c.embedding_size
        self.word_embeddings = nn.Embedding(c.vocab_size, E, padding_idx=c.pad_token_id)
        self.position_embeddings = nn.Embedding(c.max_position_embeddings, E)
        self.token_type_embeddings = nn.Embedding(c.type_vocab_size, E)
        self.LayerNorm = nn.LayerNorm(E, eps=c.layer_norm_eps)
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids):
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device)
        x = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids) \
            + self.position_embeddings(pos)[None]
        return self.dropout(self.LayerNorm(x))  # [B, T, E]


class AlbertAttention(BertSelfAttention):
    """HF AlbertAttention: query/key/value/dense/LayerNorm in one module; LN(x + dense(attn(x)))."""

    def __init__(self, c: AlbertConfig):
        super().__init__(c)
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.output_dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x, ext_mask):
        ctx = super().forward(x, ext_mask)
        return self.LayerNorm(x + self.output_dropout(self.dense(ctx)))


class AlbertLayer(nn.Module):
    """Post-LN: a = attention(x); y = full_layer_layer_norm(a + ffn_output(act(ffn(a))))."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.full_layer_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.attention = AlbertAttention(c)
        self.ffn = nn.Linear(c.hidden_size, c.intermediate_size)
        self.ffn_output = nn.Linear(c.intermediate_size, c.hidden_size)
        self.act = ACTIVATIONS[c.hidden_act]
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, x, ext_mask):
        a = self.attention(x, ext_mask)
        return self.full_layer_layer_norm(a + self.dropout(self.ffn_output(self.act(self.ffn(a)))))


class AlbertLayerGroup(nn.Module):
    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.albert_layers = nn.ModuleList([AlbertLayer(c) for _ in range(c.inner_group_num)])

    def forward(self, x, ext_mask):
        for l in self.albert_layers:
            x = l(x, ext_mask)
        return x


class AlbertTransformer(nn.Module):
    """embedding_hidden_mapping_in (E -> H), then layer i uses group int(i / (L / G)) (HF's rule)."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.config = c
        self.embedding_hidden_mapping_in = nn.Linear(c.embedding_size, c.hidden_size)
        self.albert_layer_groups = nn.ModuleList([AlbertLayerGroup(c) for _ in range(c.num_hidden_groups)])

    def forward(self, x, ext_mask):
        x = self.embedding_hidden_mapping_in(x)
        L, G = self.config.num_hidden_layers, self.config.num_hidden_groups
        for i in range(L):
            x = self.albert_layer_groups[int(i / (L / G))](x, ext_mask)
        return x


class AlbertModel(nn.Module):
    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.embeddings = AlbertEmbeddings(c)
        self.encoder = AlbertTransformer(c)
        self.pooler = nn.Linear(c.hidden_size, c.hidden_size)  # albert.pooler: tanh on token 0

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        ext = extended_attention_mask(attention_mask, self.embeddings.word_embeddings.weight.dtype)
        seq = self.encoder(self.embeddings(input_ids, token_type_ids), ext)
        return seq, torch.tanh(self.pooler(seq[:, 0]))


class AlbertMLMHead(nn.Module):
    """``predictions``: dense (H -> E) -> act -> LayerNorm (E) -> decoder (tied [V, E]) + bias."""

    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(c.embedding_size, eps=c.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(c.vocab_size))
        self.dense = nn.Linear(c.hidden_size, c.embedding_size)
        self.act = ACTIVATIONS[c.hidden_act]

    def forward(self, x, decoder_weight):
        return F.linear(self.LayerNorm(self.act(self.dense(x))), decoder_weight, self.bias)


class AlbertSOPHead(nn.Module):
    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.dropout = nn.Dropout(c.classifier_dropout_prob)
        self.classifier = nn.Linear(c.hidden_size, 2)

    def forward(self, pooled):
        return self.classifier(self.dropout(pooled))


@dataclass
class AlbertOutputs:
    logits: torch.Tensor          # [B, T, V]
    sop_logits: torch.Tensor      # [B, 2]
    loss: Optional[torch.Tensor] = None
    mlm_loss: Optional[torch.Tensor] = None
    sop_loss: Optional[torch.Tensor] = None


class AlbertForPreTraining(nn.Module):
    def __init__(self, c: AlbertConfig):
        super().__init__()
        self.config = c
        self.albert = AlbertModel(c)
        self.predictions = AlbertMLMHead(c)
        self.sop_classifier = AlbertSOPHead(c)
        init_hf_weights_(self, c.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None,
                sentence_order_label=None) -> AlbertOutputs:
        seq, pooled = self.albert(input_ids, token_type_ids, attention_mask)
        logits = self.predictions(seq, self.albert.embeddings.word_embeddings.weight)  # [B, T, V]
        sop_logits = self.sop_classifier(pooled)                                       # [B, 2]
        mlm_loss = masked_lm_loss(logits, labels)
        sop_loss = None
        if sentence_order_label is not None:
            sop_loss = F.cross_entropy(sop_logits, sentence_order_label.reshape(-1).long())
        loss = None
        if mlm_loss is not None and sop_loss is not None:
            loss = mlm_loss + sop_loss
        return AlbertOutputs(logits, sop_logits, loss, mlm_loss, sop_loss)


# --------------------------------------------------------------------------------------------------
# ELECTRA (Clark et al. 2020): generator (small MLM) + discriminator (replaced token detection)
# --------------------------------------------------------------------------------------------------


@dataclass
class ElectraConfig(BertConfig):
    embedding_size: int = 128
    hidden_size: int = 256
    num_attention_heads: int = 4
    intermediate_size: int = 1024
    pad_token_id: int = 0

    def hf_config(self, architecture: str) -> dict:
        # BERT's keys, with ELECTRA's class, embedding width and sequence-summary defaults.
        return {
            **BertConfig.hf_config(self),
            "architectures": [architecture],
            "model_type": "electra",
            "embedding_size": self.embedding_size,
            "pad_token_id": self.pad_token_id,
            "summary_type": "first",
            "summary_use_proj": True,
            "summary_activation": "gelu",
            "summary_last_dropout": 0.1,
            "classifier_dropout": None,
            "use_cache": True,
        }


class ElectraEmbeddings(AlbertEmbeddings):
    """Same structure as ALBERT's: width embedding_size, positions 0..T-1."""


class ElectraModel(nn.Module):
    """``electra``: embeddings (E) -> embeddings_project (E -> H, only if E != H) -> BERT encoder."""

    def __init__(self, c: ElectraConfig):
        super().__init__()
        self.embeddings = ElectraEmbeddings(c)
        if c.embedding_size != c.hidden_size:
            self.embeddings_project = nn.Linear(c.embedding_size, c.hidden_size)
        self.encoder = BertEncoder(c)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        if token_type_ids is None:
            token_type_ids = torch.zeros_like(input_ids)
        ext = extended_attention_mask(attention_mask, self.embeddings.word_embeddings.weight.dtype)
        x = self.embeddings(input_ids, token_type_ids)
        if hasattr(self, "embeddings_project"):
            x = self.embeddings_project(x)
        return self.encoder(x, ext)


class ElectraDiscriminatorPredictions(nn.Module):
    """RTD head: dense_prediction(act(dense(h))).squeeze(-1) -> one logit per token."""

    def __init__(self, c: ElectraConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, c.hidden_size)
        self.dense_prediction = nn.Linear(c.hidden_size, 1)

    def forward(self, h):
        return self.dense_prediction(gelu_erf(self.dense(h))).squeeze(-1)


class ElectraForPreTraining(nn.Module):
    """Discriminator. Loss: BCE-with-logits, mean over positions with attention_mask == 1 (HF)."""

    def __init__(self, c: ElectraConfig):
        super().__init__()
        self.config = c
        self.electra = ElectraModel(c)
        self.discriminator_predictions = ElectraDiscriminatorPredictions(c)
        init_hf_weights_(self, c.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        logits = self.discriminator_predictions(self.electra(input_ids, token_type_ids, attention_mask))
        loss = None
        if labels is not None:
            if attention_mask is not None:
                active = attention_mask == 1
                loss = F.binary_cross_entropy_with_logits(logits[active], labels[active].to(logits.dtype))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))
        return logits, loss  # [B, T], scalar


class ElectraGeneratorPredictions(nn.Module):
    """``generator_predictions``: dense (H -> E) -> gelu -> LayerNorm (E)."""

    def __init__(self, c: ElectraConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(c.embedding_size, eps=c.layer_norm_eps)
        self.dense = nn.Linear(c.hidden_size, c.embedding_size)

    def forward(self, h):
        return self.LayerNorm(gelu_erf(self.dense(h)))


class TiedLMHead(nn.Module):
    """A Linear whose weight is the word embedding matrix: only the bias is a parameter."""

    def __init__(self, vocab_size: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(vocab_size))

    def forward(self, x, weight):
        return F.linear(x, weight, self.bias)


class ElectraForMaskedLM(nn.Module):
    """Generator: generator_lm_head.weight tied to electra.embeddings.word_embeddings.weight."""

    def __init__(self, c: ElectraConfig):
        super().__init__()
        self.config = c
        self.electra = ElectraModel(c)
        self.generator_predictions = ElectraGeneratorPredictions(c)
        self.generator_lm_head = TiedLMHead(c.vocab_size)
        init_hf_weights_(self, c.initializer_range)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, labels=None):
        h = self.generator_predictions(self.electra(input_ids, token_type_ids, attention_mask))
        logits = self.generator_lm_head(h, self.electra.embeddings.word_embeddings.weight)  # [B, T, V]
        return logits, masked_lm_loss(logits, labels)


@dataclass
class ElectraStepOutputs:
    generator_logits: torch.Tensor   # [B, T, V]
    rtd_logits: torch.Tensor         # [B, T]
    loss: torch.Tensor
    mlm_loss: torch.Tensor
    rtd_loss: torch.Tensor
    discriminator_input_ids: torch.Tensor  # [B, T]
    rtd_labels: torch.Tensor               # [B, T] 1 = replaced


class ElectraPretraining(nn.Module):
    """One ELECTRA pretraining step with the generator's samples given (no sampling here).

    As in the paper and google-research/electra, generator and discriminator share the embeddings
    (word, position, token type and the embedding LayerNorm: one module, so its gradient is the sum
    over both models); each keeps its own embeddings_project. Samples are integer ids, so no gradient
    flows from the discriminator back into the generator. loss = mlm_loss + rtd_weight * rtd_loss.
    """

    def __init__(self, disc: ElectraConfig, gen: ElectraConfig, rtd_weight: float = 50.0):
        super().__init__()
        for f in ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size",
                  "layer_norm_eps", "pad_token_id"):
            assert getattr(disc, f) == getattr(gen, f), f"generator/discriminator differ in {f}"
        self.rtd_weight = rtd_weight
        self.discriminator = ElectraForPreTraining(disc)
        self.generator = ElectraForMaskedLM(gen)
        self.generator.electra.embeddings = self.discriminator.electra.embeddings  # shared

    def forward(self, input_ids, token_type_ids, attention_mask, labels, generator_samples):
        gen_logits, mlm_loss = self.generator(input_ids, token_type_ids, attention_mask, labels)
        masked = labels != IGNORE_INDEX
        disc_ids = torch.where(masked, generator_samples, input_ids)
        original = torch.where(masked, labels, input_ids)
        rtd_labels = (disc_ids != original).long()
        rtd_logits, rtd_loss = self.discriminator(disc_ids, token_type_ids, attention_mask, rtd_labels)
        loss = mlm_loss + self.rtd_weight * rtd_loss
        return ElectraStepOutputs(gen_logits, rtd_logits, loss, mlm_loss, rtd_loss, disc_ids, rtd_labels)


def hf_state_dict(model: nn.Module) -> "OrderedDict[str, torch.Tensor]":
    """Parameters under Hugging Face names, without tied duplicates (decoder / lm_head)."""
    return OrderedDict((n, p) for n, p in model.named_parameters())


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
