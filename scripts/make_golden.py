#!/usr/bin/python3
"""Build the golden fixtures test/fixtures/golden/{bert,gpt}/ with the reference PyTorch models.

For each model: config.json (Hugging Face config), model.safetensors (HF names, F32, no tied
duplicates), inputs.safetensors (I32), expected.safetensors (F32 logits / losses / grad.<hf name>).
Everything is deterministic (fixed seeds); the forward/backward runs in float64 on the F32-rounded
weights, results are stored as F32.

Usage: /usr/bin/python3 scripts/make_golden.py [--out test/fixtures/golden] [--no-check]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IGN = tm.IGNORE_INDEX


def perturb_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Make the fixture sensitive: weights += 0.05 randn, LN weight = 1 + 0.1 randn, bias = 0.05 randn."""
    ln_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if id(p) in ln_weights:
                p.copy_(1.0 + 0.1 * r)
            elif name.endswith("bias"):
                p.copy_(0.05 * r)
            else:
                p.add_(0.05 * r)


def write_dir(d: str, config: dict, model: torch.nn.Module, inputs: dict, expected: dict, meta: dict):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    tm.save_safetensors(os.path.join(d, "model.safetensors"), tm.hf_state_dict(model), dtype="F32",
                        metadata={"format": "pt"})
    tm.save_safetensors(os.path.join(d, "inputs.safetensors"), inputs, dtype="I32", metadata=meta)
    tm.save_safetensors(os.path.join(d, "expected.safetensors"), expected, dtype="F32", metadata=meta)


# --------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------

BERT_CFG = tm.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
PAD, CLS, SEP, MASK = 0, 2, 3, 4


def bert_inputs(gen: torch.Generator):
    B, T = 3, 12
    lengths = [12, 9, 12]          # sequence 1 has 3 padding positions at the end
    sep_a = [5, 4, 6]              # position of the first [SEP]
    ids = torch.full((B, T), PAD, dtype=torch.long)
    tt = torch.zeros((B, T), dtype=torch.long)
    am = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGN, dtype=torch.long)
    for b in range(B):
        L = lengths[b]
        orig = torch.randint(5, BERT_CFG.vocab_size, (L,), generator=gen)
        orig[0] = CLS
        orig[sep_a[b]] = SEP
        orig[L - 1] = SEP
        ids[b, :L] = orig
        am[b, :L] = 1
        tt[b, sep_a[b] + 1:L] = 1
        cand = [t for t in range(L) if int(orig[t]) not in (CLS, SEP)]
        n_lab = max(1, round(0.3 * L))   # ~30% of the real positions
        chosen = sorted(cand[i] for i in torch.randperm(len(cand), generator=gen)[:n_lab].tolist())
        for j, t in enumerate(chosen):
            labels[b, t] = orig[t]
            # 80/10/10-ish: mostly [MASK], sometimes a random token, sometimes unchanged
            if j % 3 == 1:
                ids[b, t] = int(torch.randint(5, BERT_CFG.vocab_size, (1,), generator=gen))
            elif j % 3 != 2:
                ids[b, t] = MASK
    nsp = torch.tensor([0, 1, 0], dtype=torch.long)
    return dict(input_ids=ids, token_type_ids=tt, attention_mask=am, labels=labels, next_sentence_label=nsp)


def bert_run(model, inp):
    return model(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"], inp["labels"],
                 inp["next_sentence_label"])


def make_bert(out_dir: str, check: bool):
    torch.manual_seed(1234)
    model = tm.BertForPreTraining(BERT_CFG)
    gen = torch.Generator().manual_seed(4321)
    perturb_(model, gen)
    inp = bert_inputs(torch.Generator().manual_seed(777))
    model = model.double().eval()
    model.zero_grad()
    o = bert_run(model, inp)
    o.loss.backward()
    expected = {
        "logits": o.logits.detach(),
        "nsp_logits": o.nsp_logits.detach(),
        "loss": o.loss.detach().reshape(1),
        "mlm_loss": o.mlm_loss.detach().reshape(1),
        "nsp_loss": o.nsp_loss.detach().reshape(1),
    }
    for n, p in model.named_parameters():
        expected["grad." + n] = p.grad.detach()
    meta = {"arch": "bert", "compute_dtype": "float64", "seed": "1234",
            "note": "labels: -100 ignored; loss = mlm_loss + nsp_loss; grads of loss"}
    write_dir(out_dir, BERT_CFG.hf_config(), model, inp, expected, meta)
    if check:
        bert_checks(model, inp, o)
    return model, inp, o


# --------------------------------------------------------------------------------------------------
# GPT-2
# --------------------------------------------------------------------------------------------------

GPT_CFG = tm.GPT2Config(vocab_size=101, n_positions=16, n_embd=32, n_layer=2, n_head=4, n_inner=128,
                        embd_pdrop=0.0, attn_pdrop=0.0, resid_pdrop=0.0)


def gpt_inputs(gen: torch.Generator):
    B, T = 2, 12
    seq = torch.randint(0, GPT_CFG.vocab_size, (B, T + 1), generator=gen)
    ids = seq[:, :T].clone()
    labels = seq[:, 1:].clone()
    labels[:, T - 1] = IGN        # no next token for the last position
    labels[0, 5] = IGN            # one more ignored position
    return dict(input_ids=ids, labels=labels)


def make_gpt(out_dir: str, check: bool):
    torch.manual_seed(5678)
    model = tm.GPT2LMHeadModel(GPT_CFG, use_sdpa=False)
    perturb_(model, torch.Generator().manual_seed(8765))
    inp = gpt_inputs(torch.Generator().manual_seed(999))
    model = model.double().eval()
    model.zero_grad()
    o = model(inp["input_ids"], inp["labels"])
    o.loss.backward()
    expected = {"logits": o.logits.detach(), "loss": o.loss.detach().reshape(1)}
    for n, p in model.named_parameters():
        expected["grad." + n] = p.grad.detach()
    meta = {"arch": "gpt", "compute_dtype": "float64", "seed": "5678",
            "note": "labels already shifted (labels[b,t] = target of position t), -100 ignored"}
    write_dir(out_dir, GPT_CFG.hf_config(), model, inp, expected, meta)
    if check:
        gpt_checks(model, inp, o)
    return model, inp, o


# --------------------------------------------------------------------------------------------------
# sanity checks
# --------------------------------------------------------------------------------------------------


def fd_check(model, loss_fn, entries, eps=1e-6, tol=1e-6):
    """Central finite differences in float64 for a few (param name, index) entries."""
    params = dict(model.named_parameters())
    worst = 0.0
    for name, idx in entries:
        p = params[name]
        g = p.grad[idx].item()
        with torch.no_grad():
            old = p[idx].item()
            p[idx] = old + eps
            lp = loss_fn().item()
            p[idx] = old - eps
            lm = loss_fn().item()
            p[idx] = old
        fd = (lp - lm) / (2 * eps)
        rel = abs(fd - g) / max(1e-8, abs(fd) + abs(g))
        worst = max(worst, rel)
        status = "ok" if rel < tol or abs(fd - g) < 1e-9 else "MISMATCH"
        print(f"    fd {name}{list(idx)}: autograd {g:+.10e} fd {fd:+.10e} rel {rel:.1e} {status}")
        assert status == "ok", f"finite-difference mismatch for {name}{idx}"
    return worst


def roundtrip_check(out_dir, model_ctor, run, names_expected):
    """Reload the written F32 files with the reader, recompute in float64, compare to expected."""
    sd = tm.load_safetensors(os.path.join(out_dir, "model.safetensors"))
    inp = {k: torch.from_numpy(v.astype(np.int64)) for k, v in
           tm.load_safetensors(os.path.join(out_dir, "inputs.safetensors")).items()}
    exp = tm.load_safetensors(os.path.join(out_dir, "expected.safetensors"))
    m = model_ctor().double().eval()
    missing, unexpected = m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    o = run(m, inp)
    o.loss.backward()
    d = np.abs(o.logits.detach().numpy() - exp["logits"]).max()
    dl = abs(o.loss.item() - float(exp["loss"][0]))
    dg = max(np.abs(p.grad.numpy() - exp["grad." + n]).max() for n, p in m.named_parameters())
    assert set(exp) >= set(names_expected)
    print(f"    roundtrip: max|dlogits| {d:.2e} |dloss| {dl:.2e} max|dgrad| {dg:.2e}")
    assert d < 1e-5 and dl < 1e-6 and dg < 1e-6


def bert_checks(model, inp, o):
    print("  checks (bert):")
    V = BERT_CFG.vocab_size
    # loss at init (no perturbation) ~ ln V + ln 2
    torch.manual_seed(1234)
    m0 = tm.BertForPreTraining(BERT_CFG).double().eval()
    o0 = bert_run(m0, inp)
    print(f"    init loss {o0.loss.item():.4f} (mlm {o0.mlm_loss.item():.4f} nsp {o0.nsp_loss.item():.4f}) "
          f"vs ln V + ln 2 = {math.log(V) + math.log(2):.4f}")
    assert abs(o0.mlm_loss.item() - math.log(V)) < 0.1 and abs(o0.nsp_loss.item() - math.log(2)) < 0.05
    # manual loss recomputation from the logits
    lg = o.logits.detach()
    lab = inp["labels"]
    sel = lab != IGN
    lp = torch.log_softmax(lg, -1)
    mlm = -lp[sel].gather(1, lab[sel][:, None]).mean()
    nsp = -torch.log_softmax(o.nsp_logits.detach(), -1).gather(1, inp["next_sentence_label"][:, None]).mean()
    assert abs(mlm.item() - o.mlm_loss.item()) < 1e-12 and abs(nsp.item() - o.nsp_loss.item()) < 1e-12
    # padding must not influence real positions: change ids / token types at padded positions
    inp2 = {k: v.clone() for k, v in inp.items()}
    pad = inp["attention_mask"] == 0
    inp2["input_ids"][pad] = 57
    inp2["token_type_ids"][pad] = 1
    with torch.no_grad():
        o2 = bert_run(model, inp2)
    real = inp["attention_mask"] == 1
    dpad = (o2.logits - o.logits.detach())[real].abs().max().item()
    print(f"    padding invariance: max|dlogits| on real positions {dpad:.1e}; loss diff "
          f"{abs(o2.loss.item() - o.loss.item()):.1e}")
    assert dpad < 1e-12
    # gelu must be the erf form: compare against the explicit formula
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    assert torch.allclose(tm.gelu_erf(x), 0.5 * x * (1 + torch.erf(x / math.sqrt(2))), atol=1e-15)
    # mlm_positions_only gives the same loss and grads
    model.mlm_positions_only = True
    g_full = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    o3 = bert_run(model, inp)
    o3.loss.backward()
    dg = max((p.grad - g_full[n]).abs().max().item() for n, p in model.named_parameters())
    print(f"    mlm_positions_only: |dloss| {abs(o3.loss.item() - o.loss.item()):.1e} max|dgrad| {dg:.1e}")
    assert abs(o3.loss.item() - o.loss.item()) < 1e-12 and dg < 1e-12
    model.mlm_positions_only = False
    model.zero_grad()
    bert_run(model, inp).loss.backward()

    def loss_fn():
        with torch.no_grad():
            return bert_run(model, inp).loss

    # a labelled token id (tied decoder + embedding), padded position embedding (must be 0 grad), etc.
    b, t = [(b, t) for b in range(3) for t in range(12) if inp["labels"][b, t] != IGN][0]
    tok = int(inp["labels"][b, t])
    entries = [
        ("bert.embeddings.word_embeddings.weight", (tok, 3)),
        ("bert.embeddings.word_embeddings.weight", (int(inp["input_ids"][0, 1]), 7)),
        ("bert.embeddings.word_embeddings.weight", (98, 0)),   # only via the decoder (unless used)
        ("bert.embeddings.token_type_embeddings.weight", (1, 5)),
        ("bert.embeddings.position_embeddings.weight", (10, 2)),
        ("bert.embeddings.LayerNorm.weight", (4,)),
        ("bert.encoder.layer.0.attention.self.query.weight", (3, 17)),
        ("bert.encoder.layer.0.attention.self.key.bias", (9,)),
        ("bert.encoder.layer.1.attention.self.value.weight", (20, 1)),
        ("bert.encoder.layer.1.intermediate.dense.weight", (40, 30)),
        ("bert.encoder.layer.1.output.LayerNorm.bias", (11,)),
        ("bert.pooler.dense.weight", (2, 3)),
        ("cls.predictions.transform.dense.weight", (5, 6)),
        ("cls.predictions.bias", (tok,)),
        ("cls.seq_relationship.weight", (1, 8)),
    ]
    fd_check(model, loss_fn, entries)
    # position 11 of sequence 1 is padding; padding-only token id 0 appears only there
    g = dict(model.named_parameters())["bert.embeddings.word_embeddings.weight"].grad
    print(f"    |grad| of [PAD] embedding row (decoder contribution only): {g[PAD].abs().max().item():.3e}")


def gpt_checks(model, inp, o):
    print("  checks (gpt):")
    V = GPT_CFG.vocab_size
    torch.manual_seed(5678)
    m0 = tm.GPT2LMHeadModel(GPT_CFG, use_sdpa=False).double().eval()
    l0 = m0(inp["input_ids"], inp["labels"]).loss.item()
    print(f"    init loss {l0:.4f} vs ln V = {math.log(V):.4f}")
    assert abs(l0 - math.log(V)) < 0.1
    # causality: changing the last token must not change earlier logits
    ids2 = inp["input_ids"].clone()
    ids2[:, -1] = (ids2[:, -1] + 1) % V
    with torch.no_grad():
        o2 = model(ids2)
    d_prev = (o2.logits[:, :-1] - o.logits.detach()[:, :-1]).abs().max().item()
    d_last = (o2.logits[:, -1] - o.logits.detach()[:, -1]).abs().max().item()
    print(f"    causality: max|dlogits| before changed pos {d_prev:.1e}, at changed pos {d_last:.1e}")
    assert d_prev < 1e-12 and d_last > 1e-6
    # gelu_new formula
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    assert torch.allclose(tm.gelu_tanh(x), tm.gelu_tanh_explicit(x), atol=1e-14)
    # manual CE
    lab = inp["labels"]
    sel = lab != IGN
    ce = -torch.log_softmax(o.logits.detach(), -1)[sel].gather(1, lab[sel][:, None]).mean()
    assert abs(ce.item() - o.loss.item()) < 1e-12

    def loss_fn():
        with torch.no_grad():
            return model(inp["input_ids"], inp["labels"]).loss

    tok = int(inp["labels"][1, 3])
    entries = [
        ("transformer.wte.weight", (tok, 2)),
        ("transformer.wte.weight", (int(inp["input_ids"][0, 0]), 9)),
        ("transformer.wpe.weight", (4, 6)),
        ("transformer.wpe.weight", (13, 6)),  # position beyond seq: zero grad
        ("transformer.h.0.ln_1.weight", (3,)),
        ("transformer.h.0.attn.c_attn.weight", (5, 40)),   # k part
        ("transformer.h.0.attn.c_attn.bias", (70,)),       # v part
        ("transformer.h.1.attn.c_attn.weight", (7, 3)),    # q part
        ("transformer.h.1.attn.c_proj.weight", (8, 9)),
        ("transformer.h.1.mlp.c_fc.weight", (1, 100)),
        ("transformer.h.0.mlp.c_proj.bias", (12,)),
        ("transformer.ln_f.bias", (30,)),
    ]
    fd_check(model, loss_fn, entries)


def summarize(d: str):
    total = 0
    for fn in ("config.json", "model.safetensors", "inputs.safetensors", "expected.safetensors"):
        sz = os.path.getsize(os.path.join(d, fn))
        total += sz
        print(f"    {fn:22s} {sz / 1024:7.1f} KiB")
    exp = tm.load_safetensors(os.path.join(d, "expected.safetensors"))
    inp = tm.load_safetensors(os.path.join(d, "inputs.safetensors"))
    print("    inputs: " + ", ".join(f"{k}{list(v.shape)}" for k, v in sorted(inp.items())))
    print("    expected: " + ", ".join(f"{k}{list(v.shape)}" for k, v in sorted(exp.items())
                                       if not k.startswith("grad.")) +
          f", + {sum(k.startswith('grad.') for k in exp)} grad.* tensors")
    losses = {k: float(v[0]) for k, v in exp.items() if k.endswith("loss")}
    print("    " + "  ".join(f"{k}={v:.6f}" for k, v in sorted(losses.items())))
    print(f"    total {total / 1024:.1f} KiB")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "golden"))
    ap.add_argument("--no-check", action="store_true", help="skip the sanity / finite-difference checks")
    a = ap.parse_args()
    torch.set_num_threads(1)
    check = not a.no_check
    bdir, gdir = os.path.join(a.out, "bert"), os.path.join(a.out, "gpt")
    print(f"torch {torch.__version__}; writing {a.out}")
    make_bert(bdir, check)
    if check:
        roundtrip_check(bdir, lambda: tm.BertForPreTraining(BERT_CFG), bert_run,
                        ["logits", "nsp_logits", "loss", "mlm_loss", "nsp_loss"])
    make_gpt(gdir, check)
    if check:
        roundtrip_check(gdir, lambda: tm.GPT2LMHeadModel(GPT_CFG, use_sdpa=False),
                        lambda m, i: m(i["input_ids"], i["labels"]), ["logits", "loss"])
    for d in (bdir, gdir):
        print(f"  {os.path.relpath(d, ROOT)}:")
        summarize(d)


if __name__ == "__main__":
    main()
