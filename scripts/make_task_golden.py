#!/usr/bin/python3
"""Build the fine-tuning golden fixtures test/fixtures/golden-tasks/<case>/ with the reference
PyTorch encoders of scripts/torch_models.py and task heads written here as Hugging Face has them:

  bert-sequence      BertForSequenceClassification   pooler -> dropout -> classifier, 3 labels (one -100)
  bert-regression    BertForSequenceClassification   num_labels 1: MSE against float targets
  albert-sequence    AlbertForSequenceClassification pooler -> dropout -> classifier
  roberta-sequence   RobertaForSequenceClassification first token -> dense -> tanh -> out_proj
  electra-sequence   ElectraForSequenceClassification first token -> dense -> GELU -> out_proj
  bert-token         BertForTokenClassification      dropout -> classifier, one label per token (-100 ignored)
  roberta-token      RobertaForTokenClassification
  bert-qa            BertForQuestionAnswering        qa_outputs -> start/end logits, (CE(start) + CE(end)) / 2

Each directory holds config.json (HF, with id2label / label2id), model.safetensors (HF names, F32),
inputs.safetensors (I32: input_ids, token_type_ids, attention_mask and the task's labels) and
expected.safetensors (F32: logits, loss, targets for regression, grad.<hf name> of every
parameter). The forward/backward runs in float64 on the F32-rounded weights; a central finite
difference checks a few head and encoder gradients of each case.

Usage: /usr/bin/python3 scripts/make_task_golden.py [--out test/fixtures/golden-tasks]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402
import torch_models as tm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGN = tm.IGNORE_INDEX
LABELS = ["negative", "neutral", "positive"]
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def label_maps(names):
    return {"id2label": {str(i): n for i, n in enumerate(names)}, "label2id": {n: i for i, n in enumerate(names)}}


# ---- the heads, as HF's modeling files compute them (dropout is the identity in eval) -------------


class SequenceClassifier(nn.Module):
    """Bert/AlbertForSequenceClassification: classifier(dropout(pooled)); 1 label = regression."""

    def __init__(self, encoder: nn.Module, prefix: str, hidden: int, labels: int):
        super().__init__()
        setattr(self, prefix, encoder)
        self.prefix = prefix
        self.classifier = nn.Linear(hidden, labels)

    def forward(self, inp):
        _, pooled = getattr(self, self.prefix)(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"])
        return self.classifier(pooled)


class DenseClassificationHead(nn.Module):
    """RobertaClassificationHead (tanh) / ElectraClassificationHead (GELU) over the first token."""

    def __init__(self, hidden: int, labels: int, activation):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, labels)
        self.activation = activation

    def forward(self, seq):
        return self.out_proj(self.activation(self.dense(seq[:, 0])))


class DenseSequenceClassifier(nn.Module):
    def __init__(self, encoder: nn.Module, prefix: str, hidden: int, labels: int, activation):
        super().__init__()
        setattr(self, prefix, encoder)
        self.prefix = prefix
        self.classifier = DenseClassificationHead(hidden, labels, activation)

    def forward(self, inp):
        seq = getattr(self, self.prefix)(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"])
        return self.classifier(seq)


class TokenClassifier(nn.Module):
    """*ForTokenClassification: classifier(dropout(sequence_output)), [B, T, C]."""

    def __init__(self, encoder: nn.Module, prefix: str, hidden: int, labels: int, pooled_output: bool):
        super().__init__()
        setattr(self, prefix, encoder)
        self.prefix = prefix
        self.pooled_output = pooled_output
        self.classifier = nn.Linear(hidden, labels)

    def forward(self, inp):
        out = getattr(self, self.prefix)(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"])
        return self.classifier(out[0] if self.pooled_output else out)


class QuestionAnswering(nn.Module):
    """*ForQuestionAnswering: qa_outputs(sequence_output) -> [B, T, 2] (start, end)."""

    def __init__(self, encoder: nn.Module, prefix: str, hidden: int, pooled_output: bool):
        super().__init__()
        setattr(self, prefix, encoder)
        self.prefix = prefix
        self.pooled_output = pooled_output
        self.qa_outputs = nn.Linear(hidden, 2)

    def forward(self, inp):
        out = getattr(self, self.prefix)(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"])
        return self.qa_outputs(out[0] if self.pooled_output else out)


class BertNoPooler(nn.Module):
    """BertModel(add_pooling_layer=False), as Bert{Token,QuestionAnswering} build it."""

    def __init__(self, c):
        super().__init__()
        self.embeddings = tm.BertEmbeddings(c)
        self.encoder = tm.BertEncoder(c)

    def forward(self, input_ids, token_type_ids, attention_mask):
        ext = tm.extended_attention_mask(attention_mask, self.embeddings.word_embeddings.weight.dtype)
        return self.encoder(self.embeddings(input_ids, token_type_ids), ext)


# ---- losses, as HF computes them ----------------------------------------------------------------


def sequence_loss(logits, inp):
    if logits.shape[-1] == 1:
        return F.mse_loss(logits.squeeze(-1), inp["targets"])
    return F.cross_entropy(logits, inp["labels"], ignore_index=IGN)


def token_loss(logits, inp):
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), inp["labels"].reshape(-1), ignore_index=IGN)


def span_loss(logits, inp):
    T = logits.shape[1]
    start, end = logits[..., 0], logits[..., 1]
    s = inp["start_positions"].clamp(0, T)
    e = inp["end_positions"].clamp(0, T)
    return (F.cross_entropy(start, s, ignore_index=T) + F.cross_entropy(end, e, ignore_index=T)) / 2


# ---- inputs --------------------------------------------------------------------------------------


def encoder_inputs(gen, vocab, bos=mg.CLS, sep=mg.SEP, pad=mg.PAD):
    """[CLS] A [SEP] B [SEP] (RoBERTa: <s> A </s></s> B </s> has the same shape), one padded row."""
    inp = mg.bert_inputs(gen, vocab, None)
    ids, am = inp["input_ids"], inp["attention_mask"]
    # No [MASK] in fine-tuning inputs: put the original-looking tokens back (any id >= 5 will do).
    masked = ids == mg.MASK
    ids[masked] = torch.randint(5, vocab, (int(masked.sum()),), generator=gen)
    if (bos, sep, pad) != (mg.CLS, mg.SEP, mg.PAD):
        remap = {mg.CLS: bos, mg.SEP: sep, mg.PAD: pad}
        out = ids.clone()
        for a, b in remap.items():
            out[ids == a] = b
        ids = out
    return {"input_ids": ids, "token_type_ids": inp["token_type_ids"], "attention_mask": am}


def with_sequence_labels(inp, gen, labels: int):
    B = inp["input_ids"].shape[0]
    if labels == 1:
        inp["targets"] = torch.randn(B, generator=gen, dtype=torch.float64)
    else:
        inp["labels"] = torch.tensor([2, IGN, 0][:B], dtype=torch.long)  # one sequence unlabelled
    return inp


def with_token_labels(inp, gen, labels: int):
    ids, am = inp["input_ids"], inp["attention_mask"]
    lab = torch.randint(0, labels, ids.shape, generator=gen)
    lab[am == 0] = IGN
    lab[:, 0] = IGN  # [CLS]
    lab[0, 3] = IGN  # a later sub-word of a word
    inp["labels"] = lab
    return inp


def with_spans(inp, gen):
    # One answer in each sequence's second segment, one pointing at [CLS] (no answer in this window).
    inp["start_positions"] = torch.tensor([6, 0, 8], dtype=torch.long)
    inp["end_positions"] = torch.tensor([8, 0, 8], dtype=torch.long)
    return inp


# ---- the cases -----------------------------------------------------------------------------------

BERT = mg.BERT_CFG
ROBERTA = mg.ROBERTA_CFG
ALBERT = mg.ALBERT_CFG
ELECTRA = mg.ELECTRA_DISC_CFG


def build(case: str):
    """(model, inputs, loss fn, HF config, head kind)."""
    gen = torch.Generator().manual_seed(sum(map(ord, case)))
    H = 32
    if case in ("bert-sequence", "bert-regression"):
        n = 1 if case == "bert-regression" else 3
        model = SequenceClassifier(tm.BertModel(BERT), "bert", H, n)
        inp = with_sequence_labels(encoder_inputs(gen, BERT.vocab_size), gen, n)
        config = {**BERT.hf_config(), "architectures": ["BertForSequenceClassification"]}
        config.update(
            {"problem_type": "regression", "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}
            if n == 1 else {"problem_type": "single_label_classification", **label_maps(LABELS)})
        return model, inp, sequence_loss, config
    if case == "albert-sequence":
        model = SequenceClassifier(tm.AlbertModel(ALBERT), "albert", H, 3)
        inp = with_sequence_labels(encoder_inputs(gen, ALBERT.vocab_size), gen, 3)
        config = {**ALBERT.hf_config(), "architectures": ["AlbertForSequenceClassification"], **label_maps(LABELS)}
        return model, inp, sequence_loss, config
    if case == "roberta-sequence":
        model = DenseSequenceClassifier(tm.RobertaModel(ROBERTA), "roberta", H, 3, torch.tanh)
        inp = encoder_inputs(gen, ROBERTA.vocab_size, mg.R_BOS, mg.R_EOS, mg.R_PAD)
        inp["token_type_ids"] = torch.zeros_like(inp["input_ids"])
        inp = with_sequence_labels(inp, gen, 3)
        config = {**ROBERTA.hf_config(), "architectures": ["RobertaForSequenceClassification"],
                  **label_maps(LABELS)}
        return model, inp, sequence_loss, config
    if case == "electra-sequence":
        model = DenseSequenceClassifier(tm.ElectraModel(ELECTRA), "electra", H, 3, tm.gelu_erf)
        inp = with_sequence_labels(encoder_inputs(gen, ELECTRA.vocab_size), gen, 3)
        config = {**ELECTRA.hf_config("ElectraForSequenceClassification"), **label_maps(LABELS)}
        return model, inp, sequence_loss, config
    if case == "bert-token":
        model = TokenClassifier(BertNoPooler(BERT), "bert", H, len(TAGS), pooled_output=False)
        inp = with_token_labels(encoder_inputs(gen, BERT.vocab_size), gen, len(TAGS))
        config = {**BERT.hf_config(), "architectures": ["BertForTokenClassification"], **label_maps(TAGS)}
        return model, inp, token_loss, config
    if case == "roberta-token":
        model = TokenClassifier(tm.RobertaModel(ROBERTA), "roberta", H, len(TAGS), pooled_output=False)
        inp = encoder_inputs(gen, ROBERTA.vocab_size, mg.R_BOS, mg.R_EOS, mg.R_PAD)
        inp["token_type_ids"] = torch.zeros_like(inp["input_ids"])
        inp = with_token_labels(inp, gen, len(TAGS))
        config = {**ROBERTA.hf_config(), "architectures": ["RobertaForTokenClassification"], **label_maps(TAGS)}
        return model, inp, token_loss, config
    if case == "bert-qa":
        model = QuestionAnswering(BertNoPooler(BERT), "bert", H, pooled_output=False)
        inp = with_spans(encoder_inputs(gen, BERT.vocab_size), gen)
        config = {**BERT.hf_config(), "architectures": ["BertForQuestionAnswering"]}
        return model, inp, span_loss, config
    raise ValueError(case)


CASES = ("bert-sequence", "bert-regression", "albert-sequence", "roberta-sequence", "electra-sequence",
         "bert-token", "roberta-token", "bert-qa")


def make(case: str, out_dir: str):
    torch.manual_seed(sum(map(ord, case)) * 7)
    model, inp, loss_fn, config = build(case)
    mg.perturb_(model, torch.Generator().manual_seed(sum(map(ord, case)) * 13))
    model = model.double().eval()
    model.zero_grad()
    logits = model(inp)
    loss = loss_fn(logits, inp)
    loss.backward()
    expected = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    if "targets" in inp:
        expected["targets"] = inp["targets"]
    for n, p in model.named_parameters():
        expected["grad." + n] = p.grad.detach()
    ints = {k: v for k, v in inp.items() if k != "targets"}
    meta = {"case": case, "compute_dtype": "float64",
            "note": "HF head and loss; -100 ignored; dropout off; grads of loss"}
    mg.write_dir(out_dir, config, model, ints, expected, meta)

    def value():
        with torch.no_grad():
            return loss_fn(model(inp), inp)

    head = "qa_outputs" if case.endswith("qa") else (
        "classifier.out_proj" if isinstance(model, DenseSequenceClassifier) else "classifier")
    names = [n for n, _ in model.named_parameters()]
    entries = [(f"{head}.weight", (0, 1)), (f"{head}.bias", (0,)),
               (next(n for n in names if "encoder" in n and n.endswith("query.weight")), (1, 2)),
               (next(n for n in names if n.endswith("word_embeddings.weight")), (int(inp["input_ids"][0, 2]), 3))]
    worst = mg.fd_check(model, value, entries, eps=1e-5)
    print(f"  {case}: loss {loss.item():.6f}, finite differences worst relative error {worst:.1e}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "golden-tasks"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    for case in CASES:
        make(case, os.path.join(a.out, case))


if __name__ == "__main__":
    main()
