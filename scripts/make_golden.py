#!/usr/bin/python3
"""Build the golden fixtures test/fixtures/golden/{bert,gpt,roberta,albert,electra}/ with the
reference PyTorch models.

For each model: config.json (Hugging Face config), model.safetensors (HF names, F32, no tied
duplicates), inputs.safetensors (I32), expected.safetensors (F32 logits / losses / grad.<hf name>).
ELECTRA also has electra/generator/{config.json,model.safetensors} (the generator shares the
discriminator's embeddings; its other gradients are expected["grad.generator.<hf name>"]).
Everything is deterministic (fixed seeds); the forward/backward runs in float64 on the F32-rounded
weights, results are stored as F32. If `transformers` happens to be importable, the new families are
also cross-checked against it (silently skipped otherwise).

Usage: /usr/bin/python3 scripts/make_golden.py [--out test/fixtures/golden] [--no-check]
                                               [--only bert,gpt,roberta,albert,electra]
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


def write_model_dir(d: str, config: dict, model: torch.nn.Module):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)
        f.write("\n")
    tm.save_safetensors(os.path.join(d, "model.safetensors"), tm.hf_state_dict(model), dtype="F32",
                        metadata={"format": "pt"})


def write_dir(d: str, config: dict, model: torch.nn.Module, inputs: dict, expected: dict, meta: dict):
    write_model_dir(d, config, model)
    tm.save_safetensors(os.path.join(d, "inputs.safetensors"), inputs, dtype="I32", metadata=meta)
    tm.save_safetensors(os.path.join(d, "expected.safetensors"), expected, dtype="F32", metadata=meta)


# --------------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------------

BERT_CFG = tm.BertConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                         intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
                         hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
PAD, CLS, SEP, MASK = 0, 2, 3, 4


def bert_inputs(gen: torch.Generator, vocab_size: int = BERT_CFG.vocab_size,
                pair_label: str = "next_sentence_label", pair_values=(0, 1, 0)):
    """[CLS] A [SEP] B [SEP], pad 0, one padded sequence, ~30% labelled (MASK / random / kept).

    Also used for ALBERT (pair_label "sentence_order_label") and ELECTRA (pair_label None)."""
    B, T = 3, 12
    lengths = [12, 9, 12]          # sequence 1 has 3 padding positions at the end
    sep_a = [5, 4, 6]              # position of the first [SEP]
    ids = torch.full((B, T), PAD, dtype=torch.long)
    tt = torch.zeros((B, T), dtype=torch.long)
    am = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGN, dtype=torch.long)
    for b in range(B):
        L = lengths[b]
        orig = torch.randint(5, vocab_size, (L,), generator=gen)
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
                ids[b, t] = int(torch.randint(5, vocab_size, (1,), generator=gen))
            elif j % 3 != 2:
                ids[b, t] = MASK
    out = dict(input_ids=ids, token_type_ids=tt, attention_mask=am, labels=labels)
    if pair_label is not None:
        out[pair_label] = torch.tensor(pair_values, dtype=torch.long)
    return out


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
# RoBERTa
# --------------------------------------------------------------------------------------------------

ROBERTA_CFG = tm.RobertaConfig(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                               intermediate_size=64, max_position_embeddings=18, type_vocab_size=1,
                               hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
R_BOS, R_PAD, R_EOS, R_MASK = 0, 1, 2, 4   # <s> <pad> </s> <mask> (3 = <unk>)


def roberta_inputs(gen: torch.Generator):
    """<s> tokens </s>, right-padded with <pad> = 1; ~30% labelled (<mask> / random / kept)."""
    B, T = 3, 12
    lengths = [12, 8, 12]          # sequence 1 has 4 padding positions at the end
    V = ROBERTA_CFG.vocab_size
    ids = torch.full((B, T), R_PAD, dtype=torch.long)
    am = torch.zeros((B, T), dtype=torch.long)
    labels = torch.full((B, T), IGN, dtype=torch.long)
    for b in range(B):
        L = lengths[b]
        orig = torch.randint(5, V, (L,), generator=gen)
        orig[0] = R_BOS
        orig[L - 1] = R_EOS
        ids[b, :L] = orig
        am[b, :L] = 1
        cand = list(range(1, L - 1))
        n_lab = max(1, round(0.3 * L))
        chosen = sorted(cand[i] for i in torch.randperm(len(cand), generator=gen)[:n_lab].tolist())
        for j, t in enumerate(chosen):
            labels[b, t] = orig[t]
            if j % 3 == 1:
                ids[b, t] = int(torch.randint(5, V, (1,), generator=gen))
            elif j % 3 != 2:
                ids[b, t] = R_MASK
    # token_type_ids: all 0 (type_vocab_size 1), stored for uniform loaders
    return dict(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=am, labels=labels)


def roberta_run(model, inp):
    return model(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"], inp["labels"])


def make_roberta(out_dir: str, check: bool):
    torch.manual_seed(2468)
    model = tm.RobertaForMaskedLM(ROBERTA_CFG)
    perturb_(model, torch.Generator().manual_seed(8642))
    inp = roberta_inputs(torch.Generator().manual_seed(1357))
    model = model.double().eval()
    model.zero_grad()
    o = roberta_run(model, inp)
    o.loss.backward()
    expected = {
        "logits": o.logits.detach(),
        "loss": o.loss.detach().reshape(1),
        "mlm_loss": o.mlm_loss.detach().reshape(1),
    }
    for n, p in model.named_parameters():
        expected["grad." + n] = p.grad.detach()
    meta = {"arch": "roberta", "compute_dtype": "float64", "seed": "2468",
            "note": "labels: -100 ignored; loss = mlm_loss; grads of loss. Position ids as HF: "
                    "1 + cumsum(input_ids != 1), pads get 1, so real token t uses position row t + 2. "
                    "Logits at every position (pads too). lm_head.decoder.weight is tied to "
                    "roberta.embeddings.word_embeddings.weight and lm_head.decoder.bias to "
                    "lm_head.bias (both omitted). Padding rows (word 1, position 1) take no lookup "
                    "gradient (nn.Embedding padding_idx, as HF)."}
    write_dir(out_dir, ROBERTA_CFG.hf_config(), model, inp, expected, meta)
    if check:
        roberta_checks(model, inp, o)
    return model, inp, o


# --------------------------------------------------------------------------------------------------
# ALBERT
# --------------------------------------------------------------------------------------------------

ALBERT_CFG = tm.AlbertConfig(vocab_size=99, embedding_size=16, hidden_size=32, num_hidden_layers=3,
                             num_attention_heads=4, intermediate_size=64, max_position_embeddings=16,
                             type_vocab_size=2, num_hidden_groups=1, inner_group_num=1,
                             hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                             classifier_dropout_prob=0.0)
ALBERT_LAYER = "albert.encoder.albert_layer_groups.0.albert_layers.0."


def albert_inputs(gen: torch.Generator):
    # sentence_order_label: 0 = A then B (in order), 1 = swapped
    return bert_inputs(gen, ALBERT_CFG.vocab_size, "sentence_order_label", (1, 0, 1))


def albert_run(model, inp):
    return model(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"], inp["labels"],
                 inp["sentence_order_label"])


def make_albert(out_dir: str, check: bool):
    torch.manual_seed(3579)
    model = tm.AlbertForPreTraining(ALBERT_CFG)
    perturb_(model, torch.Generator().manual_seed(9753))
    inp = albert_inputs(torch.Generator().manual_seed(2222))
    model = model.double().eval()
    model.zero_grad()
    o = albert_run(model, inp)
    o.loss.backward()
    expected = {
        "logits": o.logits.detach(),
        "sop_logits": o.sop_logits.detach(),
        "loss": o.loss.detach().reshape(1),
        "mlm_loss": o.mlm_loss.detach().reshape(1),
        "sop_loss": o.sop_loss.detach().reshape(1),
    }
    for n, p in model.named_parameters():
        expected["grad." + n] = p.grad.detach()
    meta = {"arch": "albert", "compute_dtype": "float64", "seed": "3579",
            "note": "labels: -100 ignored; loss = mlm_loss + sop_loss (sentence_order_label 0 = in "
                    "order, 1 = swapped); grads of loss. The one shared layer (group 0, layer 0) is "
                    "applied num_hidden_layers = 3 times: its grads are the sum over the 3 uses. "
                    "hidden_act gelu_new (tanh) in the layers and the MLM head. "
                    "predictions.decoder.weight is tied to albert.embeddings.word_embeddings.weight "
                    "and predictions.decoder.bias to predictions.bias (both omitted)."}
    write_dir(out_dir, ALBERT_CFG.hf_config(), model, inp, expected, meta)
    if check:
        albert_checks(model, inp, o)
    return model, inp, o


# --------------------------------------------------------------------------------------------------
# ELECTRA
# --------------------------------------------------------------------------------------------------

_ELECTRA_COMMON = dict(vocab_size=99, embedding_size=16, max_position_embeddings=16, type_vocab_size=2,
                       hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
ELECTRA_DISC_CFG = tm.ElectraConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                    intermediate_size=64, **_ELECTRA_COMMON)
ELECTRA_GEN_CFG = tm.ElectraConfig(hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=32, **_ELECTRA_COMMON)
ELECTRA_RTD_WEIGHT = 50.0
SHARED_EMB = "electra.embeddings."


def electra_inputs(gen: torch.Generator):
    """BERT-style masked input plus generator_samples: the generator's token at each labelled position
    (every 4th one, starting with the 2nd, equals the original token, so its RTD label is 0; the others
    differ from it), equal to input_ids elsewhere."""
    inp = bert_inputs(gen, ELECTRA_DISC_CFG.vocab_size, None)
    V = ELECTRA_DISC_CFG.vocab_size
    samples = inp["input_ids"].clone()
    pos = [(b, t) for b in range(samples.shape[0]) for t in range(samples.shape[1])
           if inp["labels"][b, t] != IGN]
    for k, (b, t) in enumerate(pos):
        orig = int(inp["labels"][b, t])
        if k % 4 == 1:
            samples[b, t] = orig
        else:
            r = orig
            while r == orig:
                r = int(torch.randint(5, V, (1,), generator=gen))
            samples[b, t] = r
    inp["generator_samples"] = samples
    return inp


def electra_ctor():
    return tm.ElectraPretraining(ELECTRA_DISC_CFG, ELECTRA_GEN_CFG, ELECTRA_RTD_WEIGHT)


def electra_run(model, inp):
    return model(inp["input_ids"], inp["token_type_ids"], inp["attention_mask"], inp["labels"],
                 inp["generator_samples"])


def electra_grads(model) -> dict:
    """expected grad names: grad.<discriminator name> (shared embeddings: total over both models) and
    grad.generator.<generator name> for the generator's own parameters."""
    out = {}
    for n, p in model.discriminator.named_parameters():
        out["grad." + n] = p.grad
    for n, p in model.generator.named_parameters():
        if not n.startswith(SHARED_EMB):
            out["grad.generator." + n] = p.grad
    return out


def make_electra(out_dir: str, check: bool):
    torch.manual_seed(4680)
    model = electra_ctor()
    perturb_(model, torch.Generator().manual_seed(864))   # shared embeddings perturbed once
    inp = electra_inputs(torch.Generator().manual_seed(3333))
    model = model.double().eval()
    model.zero_grad()
    o = electra_run(model, inp)
    o.loss.backward()
    expected = {
        "generator_logits": o.generator_logits.detach(),
        "rtd_logits": o.rtd_logits.detach(),
        "loss": o.loss.detach().reshape(1),
        "mlm_loss": o.mlm_loss.detach().reshape(1),
        "rtd_loss": o.rtd_loss.detach().reshape(1),
    }
    for n, g in electra_grads(model).items():
        expected[n] = g.detach()
    meta = {"arch": "electra", "compute_dtype": "float64", "seed": "4680",
            "note": "One step with fixed generator samples. Generator (generator/, ElectraForMaskedLM) "
                    "gives generator_logits on input_ids; mlm_loss = CE over labels != -100. "
                    "Discriminator (ElectraForPreTraining) input = generator_samples at labelled "
                    "positions, input_ids elsewhere; rtd label = 1 where it differs from the original "
                    "(labels at labelled positions, input_ids elsewhere); rtd_loss = BCE-with-logits "
                    "mean over attention_mask == 1. loss = mlm_loss + 50 * rtd_loss; grads of loss. "
                    "electra.embeddings.* (word, position, token type, LayerNorm) are one tensor set "
                    "shared by both models: grad.electra.embeddings.* is the total over both; "
                    "grad.generator.<name> covers the generator's own parameters. "
                    "generator_lm_head.weight is tied to the word embeddings (omitted)."}
    write_dir(out_dir, ELECTRA_DISC_CFG.hf_config("ElectraForPreTraining"), model.discriminator, inp,
              expected, meta)
    write_model_dir(os.path.join(out_dir, "generator"), ELECTRA_GEN_CFG.hf_config("ElectraForMaskedLM"),
                    model.generator)
    if check:
        electra_checks(model, inp, o)
    return model, inp, o


# --------------------------------------------------------------------------------------------------
# sanity checks
# --------------------------------------------------------------------------------------------------


def fd_check(model, loss_fn, entries, eps=1e-6, tol=1e-6, atol=1e-9):
    """Central finite differences in float64 for a few (param name, index) entries.

    An entry passes with relative error < tol or |fd - autograd| < atol (the rounding noise of the
    difference quotient is about |loss| * 1e-16 / eps)."""
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
        status = "ok" if rel < tol or abs(fd - g) < atol else "MISMATCH"
        print(f"    fd {name}{list(idx)}: autograd {g:+.10e} fd {fd:+.10e} rel {rel:.1e} {status}")
        assert status == "ok", f"finite-difference mismatch for {name}{idx}"
    return worst


def roundtrip_check(out_dir, model_ctor, run, names_expected, outputs=("logits",), load=None, grads=None):
    """Reload the written F32 files with the reader, recompute in float64, compare to expected.

    outputs: expected names that are attributes of the run's result (every *loss too); load(model,
    out_dir) fills the model (default: model.safetensors, strict); grads(model) -> {expected name:
    grad} (default grad.<name> for every parameter). expected must hold exactly those grad names."""
    inp = {k: torch.from_numpy(v.astype(np.int64)) for k, v in
           tm.load_safetensors(os.path.join(out_dir, "inputs.safetensors")).items()}
    exp = tm.load_safetensors(os.path.join(out_dir, "expected.safetensors"))
    m = model_ctor().double().eval()
    if load is None:
        sd = tm.load_safetensors(os.path.join(out_dir, "model.safetensors"))
        missing, unexpected = m.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
        assert not missing and not unexpected, (missing, unexpected)
    else:
        load(m, out_dir)
    o = run(m, inp)
    o.loss.backward()
    d = max(np.abs(getattr(o, k).detach().numpy() - exp[k]).max() for k in outputs)
    losses = [k for k in exp if k.endswith("loss") and hasattr(o, k)]
    dl = max(abs(getattr(o, k).item() - float(exp[k][0])) for k in losses)
    dl_rel = max(abs(getattr(o, k).item() - float(exp[k][0])) / max(1.0, abs(float(exp[k][0]))) for k in losses)
    gmap = grads(m) if grads is not None else {"grad." + n: p.grad for n, p in m.named_parameters()}
    assert set(k for k in exp if k.startswith("grad.")) == set(gmap), "grad names differ"
    dg = max(np.abs(g.numpy() - exp[n]).max() for n, g in gmap.items())
    # relative to the tensor's scale (ELECTRA's loss is ~40 and its grads carry the factor 50)
    dg_rel = max(np.abs(g.numpy() - exp[n]).max() / max(1.0, np.abs(exp[n]).max()) for n, g in gmap.items())
    assert set(exp) >= set(names_expected)
    print(f"    roundtrip: max|d{'|,|d'.join(outputs)}| {d:.2e} |dloss| {dl:.2e} max|dgrad| {dg:.2e} "
          f"(rel. to scale {dg_rel:.2e})")
    assert d < 1e-5 and dl_rel < 1e-6 and dg_rel < 1e-6
    return d, dl, dg


def electra_load(m, out_dir):
    """Fill ElectraPretraining from electra/ (discriminator) and electra/generator/; the generator's
    electra.embeddings.* must equal the discriminator's (one shared set)."""
    disc = tm.load_safetensors(os.path.join(out_dir, "model.safetensors"))
    gen = tm.load_safetensors(os.path.join(out_dir, "generator", "model.safetensors"))
    shared = [k for k in gen if k.startswith(SHARED_EMB)]
    assert len(shared) == 5 and all(np.array_equal(gen[k], disc[k]) for k in shared)
    for mod, sd in ((m.discriminator, disc), (m.generator, gen)):
        missing, unexpected = mod.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=False)
        assert not missing and not unexpected, (missing, unexpected)


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


def roberta_checks(model, inp, o):
    print("  checks (roberta):")
    V = ROBERTA_CFG.vocab_size
    torch.manual_seed(2468)
    m0 = tm.RobertaForMaskedLM(ROBERTA_CFG).double().eval()
    l0 = roberta_run(m0, inp).loss.item()
    print(f"    init loss {l0:.4f} vs ln V = {math.log(V):.4f}")
    assert abs(l0 - math.log(V)) < 0.1
    lab = inp["labels"]
    sel = lab != IGN
    ce = -torch.log_softmax(o.logits.detach(), -1)[sel].gather(1, lab[sel][:, None]).mean()
    assert abs(ce.item() - o.loss.item()) < 1e-12
    # position ids: real token t -> t + 2, pads -> 1
    pos = tm.roberta_position_ids(inp["input_ids"], R_PAD)
    am = inp["attention_mask"]
    want = torch.where(am == 1, torch.arange(12)[None] + 2, torch.full_like(am, R_PAD))
    assert torch.equal(pos, want), pos
    print(f"    position ids row 1 (padded): {pos[1].tolist()}")
    # padding invariance: other ids at padded positions leave the real positions unchanged
    real = am == 1
    inp2 = {k: v.clone() for k, v in inp.items()}
    inp2["input_ids"][~real] = 57
    with torch.no_grad():
        o2 = roberta_run(model, inp2)
    dpad = (o2.logits - o.logits.detach())[real].abs().max().item()
    # left padding gives the same real-token logits: HF positions count only non-pad tokens
    b = 1
    L = int(am[b].sum())
    ids_l = torch.full((1, 12), R_PAD, dtype=torch.long)
    ids_l[0, 12 - L:] = inp["input_ids"][b, :L]
    am_l = torch.zeros((1, 12), dtype=torch.long)
    am_l[0, 12 - L:] = 1
    with torch.no_grad():
        ol = model(ids_l, torch.zeros_like(ids_l), am_l)
    dleft = (ol.logits[0, 12 - L:] - o.logits.detach()[b, :L]).abs().max().item()
    print(f"    padding invariance {dpad:.1e}; left- vs right-padded real-token logits {dleft:.1e}")
    assert dpad < 1e-12 and dleft < 1e-10
    g = dict(model.named_parameters())["roberta.embeddings.position_embeddings.weight"].grad
    assert g[R_PAD].abs().max().item() == 0.0 and g[0].abs().max().item() == 0.0 and \
        g[14:].abs().max().item() == 0.0 and g[2:14].abs().min().item() > 0.0

    def loss_fn():
        with torch.no_grad():
            return roberta_run(model, inp).loss

    b, t = [(b, t) for b in range(3) for t in range(12) if inp["labels"][b, t] != IGN][0]
    tok = int(inp["labels"][b, t])
    entries = [
        ("roberta.embeddings.word_embeddings.weight", (tok, 3)),
        ("roberta.embeddings.word_embeddings.weight", (int(inp["input_ids"][0, 1]), 7)),
        ("roberta.embeddings.word_embeddings.weight", (R_PAD, 5)),   # decoder only (padding_idx)
        ("roberta.embeddings.word_embeddings.weight", (R_BOS, 2)),
        ("roberta.embeddings.position_embeddings.weight", (7, 2)),   # token 5
        ("roberta.embeddings.position_embeddings.weight", (13, 9)),  # token 11 of the full sequences
        ("roberta.embeddings.position_embeddings.weight", (R_PAD, 4)),  # pads only: zero grad
        ("roberta.embeddings.token_type_embeddings.weight", (0, 5)),
        ("roberta.embeddings.LayerNorm.weight", (4,)),
        ("roberta.encoder.layer.0.attention.self.query.weight", (3, 17)),
        ("roberta.encoder.layer.0.attention.output.dense.bias", (9,)),
        ("roberta.encoder.layer.1.attention.self.value.weight", (20, 1)),
        ("roberta.encoder.layer.1.intermediate.dense.weight", (40, 30)),
        ("roberta.encoder.layer.1.output.LayerNorm.bias", (11,)),
        ("lm_head.dense.weight", (5, 6)),
        ("lm_head.layer_norm.weight", (12,)),
        ("lm_head.bias", (tok,)),
    ]
    return fd_check(model, loss_fn, entries)


def albert_checks(model, inp, o):
    print("  checks (albert):")
    V = ALBERT_CFG.vocab_size
    torch.manual_seed(3579)
    m0 = tm.AlbertForPreTraining(ALBERT_CFG).double().eval()
    o0 = albert_run(m0, inp)
    print(f"    init loss {o0.loss.item():.4f} (mlm {o0.mlm_loss.item():.4f} sop {o0.sop_loss.item():.4f}) "
          f"vs ln V + ln 2 = {math.log(V) + math.log(2):.4f}")
    assert abs(o0.mlm_loss.item() - math.log(V)) < 0.1 and abs(o0.sop_loss.item() - math.log(2)) < 0.05
    lab = inp["labels"]
    sel = lab != IGN
    mlm = -torch.log_softmax(o.logits.detach(), -1)[sel].gather(1, lab[sel][:, None]).mean()
    sop = -torch.log_softmax(o.sop_logits.detach(), -1).gather(1, inp["sentence_order_label"][:, None]).mean()
    assert abs(mlm.item() - o.mlm_loss.item()) < 1e-12 and abs(sop.item() - o.sop_loss.item()) < 1e-12
    assert abs(o.loss.item() - mlm.item() - sop.item()) < 1e-12
    # gelu_new is the tanh form
    x = torch.linspace(-4, 4, 101, dtype=torch.float64)
    assert tm.ACTIVATIONS[ALBERT_CFG.hidden_act] is tm.gelu_tanh
    assert torch.allclose(tm.gelu_tanh(x), tm.gelu_tanh_explicit(x), atol=1e-14)
    # padding invariance
    inp2 = {k: v.clone() for k, v in inp.items()}
    pad = inp["attention_mask"] == 0
    inp2["input_ids"][pad] = 57
    inp2["token_type_ids"][pad] = 1
    with torch.no_grad():
        o2 = albert_run(model, inp2)
    dpad = (o2.logits - o.logits.detach())[~pad].abs().max().item()
    dsop = (o2.sop_logits - o.sop_logits.detach()).abs().max().item()
    print(f"    padding invariance: max|dlogits| {dpad:.1e} max|dsop_logits| {dsop:.1e}")
    assert dpad < 1e-12 and dsop < 1e-12
    # sharing: 3 groups holding copies of the shared layer give the same outputs, and the copies'
    # gradients add up to the shared layer's gradient
    import dataclasses
    unrolled = tm.AlbertForPreTraining(dataclasses.replace(ALBERT_CFG, num_hidden_groups=3)).double().eval()
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    sd3 = {}
    for k, v in sd.items():
        if k.startswith("albert.encoder.albert_layer_groups.0."):
            for gi in range(3):
                sd3[k.replace("albert_layer_groups.0.", f"albert_layer_groups.{gi}.")] = v
        else:
            sd3[k] = v
    unrolled.load_state_dict(sd3, strict=True)
    o3 = albert_run(unrolled, inp)
    o3.loss.backward()
    p3 = dict(unrolled.named_parameters())
    dl = abs(o3.loss.item() - o.loss.item())
    dg = 0.0
    for n, p in model.named_parameters():
        if n.startswith(ALBERT_LAYER):
            s = sum(p3[n.replace("albert_layer_groups.0.", f"albert_layer_groups.{gi}.")].grad for gi in range(3))
            dg = max(dg, (s - p.grad).abs().max().item())
    print(f"    shared layer vs 3 unshared copies: |dloss| {dl:.1e} max|grad - sum of copies| {dg:.1e}")
    assert dl < 1e-12 and dg < 1e-12

    def loss_fn():
        with torch.no_grad():
            return albert_run(model, inp).loss

    b, t = [(b, t) for b in range(3) for t in range(12) if inp["labels"][b, t] != IGN][0]
    tok = int(inp["labels"][b, t])
    entries = [
        ("albert.embeddings.word_embeddings.weight", (tok, 3)),
        ("albert.embeddings.word_embeddings.weight", (int(inp["input_ids"][0, 1]), 7)),
        ("albert.embeddings.word_embeddings.weight", (PAD, 1)),      # decoder only (padding_idx)
        ("albert.embeddings.position_embeddings.weight", (10, 2)),
        ("albert.embeddings.token_type_embeddings.weight", (1, 5)),
        ("albert.embeddings.LayerNorm.bias", (4,)),
        ("albert.encoder.embedding_hidden_mapping_in.weight", (20, 9)),
        (ALBERT_LAYER + "attention.query.weight", (3, 17)),
        (ALBERT_LAYER + "attention.key.weight", (9, 4)),
        (ALBERT_LAYER + "attention.value.weight", (20, 1)),
        (ALBERT_LAYER + "attention.dense.weight", (6, 30)),
        (ALBERT_LAYER + "attention.LayerNorm.weight", (13,)),
        (ALBERT_LAYER + "ffn.weight", (40, 30)),
        (ALBERT_LAYER + "ffn_output.bias", (2,)),
        (ALBERT_LAYER + "full_layer_layer_norm.weight", (11,)),
        ("albert.pooler.weight", (2, 3)),
        ("predictions.dense.weight", (5, 6)),
        ("predictions.LayerNorm.weight", (7,)),
        ("predictions.bias", (tok,)),
        ("sop_classifier.classifier.weight", (1, 8)),
    ]
    return fd_check(model, loss_fn, entries)


def electra_checks(model, inp, o):
    print("  checks (electra):")
    V = ELECTRA_DISC_CFG.vocab_size
    torch.manual_seed(4680)
    m0 = electra_ctor().double().eval()
    o0 = electra_run(m0, inp)
    print(f"    init mlm {o0.mlm_loss.item():.4f} vs ln V = {math.log(V):.4f}; "
          f"rtd {o0.rtd_loss.item():.4f} vs ln 2 = {math.log(2):.4f}")
    assert abs(o0.mlm_loss.item() - math.log(V)) < 0.1 and abs(o0.rtd_loss.item() - math.log(2)) < 0.05
    # the embeddings are one module
    assert model.generator.electra.embeddings is model.discriminator.electra.embeddings
    # RTD labels: only labelled positions can be replaced; some samples equal the original
    lab, am = inp["labels"], inp["attention_mask"]
    sel = lab != IGN
    rl = o.rtd_labels
    assert rl[~sel].abs().max().item() == 0
    n1, n0 = int(rl[sel].sum()), int(sel.sum() - rl[sel].sum())
    print(f"    labelled positions {int(sel.sum())}: replaced (rtd 1) {n1}, sample == original (rtd 0) {n0}")
    assert n1 > 0 and n0 > 0
    assert torch.equal(o.discriminator_input_ids, inp["generator_samples"])
    # manual losses
    mlm = -torch.log_softmax(o.generator_logits.detach(), -1)[sel].gather(1, lab[sel][:, None]).mean()
    z, y = o.rtd_logits.detach()[am == 1], rl[am == 1].double()
    bce = (torch.clamp(z, min=0) - z * y + torch.log1p(torch.exp(-z.abs()))).mean()
    assert abs(mlm.item() - o.mlm_loss.item()) < 1e-12 and abs(bce.item() - o.rtd_loss.item()) < 1e-12
    assert abs(o.loss.item() - mlm.item() - ELECTRA_RTD_WEIGHT * bce.item()) < 1e-10
    # gradient split: mlm reaches only generator + shared, rtd only discriminator + shared, sum = total
    total = {n: p.grad.clone() for n, p in model.named_parameters()}
    parts = []
    for which in ("mlm", "rtd"):
        model.zero_grad(set_to_none=True)
        oo = electra_run(model, inp)
        (oo.mlm_loss if which == "mlm" else ELECTRA_RTD_WEIGHT * oo.rtd_loss).backward()
        parts.append({n: p.grad for n, p in model.named_parameters()})
    ds = 0.0
    for n in total:
        g_m, g_r = parts[0][n], parts[1][n]
        if n.startswith("generator."):
            assert g_r is None, n
        elif n.startswith("discriminator." + SHARED_EMB):
            assert g_m is not None and g_r is not None, n
        else:
            assert g_m is None, n
        s = (g_m if g_m is not None else 0) + (g_r if g_r is not None else 0)
        ds = max(ds, (s - total[n]).abs().max().item())
    print(f"    grad(mlm) + grad(50 rtd) vs grad(loss): max diff {ds:.1e}")
    assert ds < 1e-12
    model.zero_grad()
    electra_run(model, inp).loss.backward()
    # padding invariance
    inp2 = {k: v.clone() for k, v in inp.items()}
    pad = am == 0
    for k in ("input_ids", "generator_samples"):
        inp2[k][pad] = 57
    inp2["token_type_ids"][pad] = 1
    with torch.no_grad():
        o2 = electra_run(model, inp2)
    dpad = max((o2.generator_logits - o.generator_logits.detach())[~pad].abs().max().item(),
               (o2.rtd_logits - o.rtd_logits.detach())[~pad].abs().max().item())
    print(f"    padding invariance: max|dlogits| on real positions {dpad:.1e}")
    assert dpad < 1e-12

    def loss_fn():
        with torch.no_grad():
            return electra_run(model, inp).loss

    D, G, S = "discriminator.", "generator.", "discriminator." + SHARED_EMB
    b, t = [(b, t) for b in range(3) for t in range(12) if inp["labels"][b, t] != IGN][0]
    tok = int(inp["labels"][b, t])
    (rb, rt) = [(b, t) for b in range(3) for t in range(12) if rl[b, t] == 1][0]
    samp = int(inp["generator_samples"][rb, rt])
    entries = [
        (S + "word_embeddings.weight", (tok, 3)),        # generator decoder + lookups of both
        (S + "word_embeddings.weight", (samp, 6)),       # a replaced token seen by the discriminator
        (S + "word_embeddings.weight", (MASK, 0)),       # [MASK]: generator input only
        (S + "word_embeddings.weight", (CLS, 9)),
        (S + "position_embeddings.weight", (3, 2)),
        (S + "token_type_embeddings.weight", (1, 5)),
        (S + "LayerNorm.weight", (4,)),
        (S + "LayerNorm.bias", (10,)),
        (D + "electra.embeddings_project.weight", (20, 9)),
        (D + "electra.encoder.layer.0.attention.self.query.weight", (8, 9)),
        (D + "electra.encoder.layer.1.output.dense.weight", (7, 50)),
        (D + "discriminator_predictions.dense.weight", (2, 3)),
        (D + "discriminator_predictions.dense_prediction.weight", (0, 8)),
        (D + "discriminator_predictions.dense_prediction.bias", (0,)),
        (G + "electra.embeddings_project.weight", (5, 11)),
        (G + "electra.encoder.layer.0.attention.self.key.weight", (0, 0)),
        (G + "electra.encoder.layer.1.intermediate.dense.bias", (20,)),
        (G + "generator_predictions.dense.weight", (5, 6)),
        (G + "generator_predictions.LayerNorm.weight", (7,)),
        (G + "generator_lm_head.bias", (tok,)),
    ]
    # loss ~40 (50 x rtd) and small attention grads: with eps 1e-6 the quotient's rounding noise
    # (~|loss| 1e-16 / eps = 4e-9) is 1e-4 of a query/key grad; eps 1e-4 cuts it to ~4e-11
    return fd_check(model, loss_fn, entries, eps=1e-4)


# HF names that are tied aliases of a stored tensor (may be reported missing by from_pretrained)
HF_TIED_ALIASES = ("lm_head.decoder.weight", "lm_head.decoder.bias", "predictions.decoder.weight",
                   "predictions.decoder.bias", "generator_lm_head.weight")


def hf_cross_check(family: str, out_dir: str, inp: dict, o) -> None:
    """Optional: load the written fixture dirs with Hugging Face transformers (when importable; silently
    skipped otherwise) and compare its float64 outputs with ours."""
    try:
        import transformers
    except Exception:
        return
    infos = {}
    try:
        def build(cls_name, d):
            m, info = getattr(transformers, cls_name).from_pretrained(d, output_loading_info=True)
            infos[d] = info
            return m.double().eval()

        kw = dict(input_ids=inp["input_ids"], token_type_ids=inp["token_type_ids"],
                  attention_mask=inp["attention_mask"])
        with torch.no_grad():
            if family == "roberta":
                got = {"logits": (build("RobertaForMaskedLM", out_dir)(**kw).logits, o.logits)}
            elif family == "albert":
                r = build("AlbertForPreTraining", out_dir)(**kw)
                got = {"logits": (r.prediction_logits, o.logits), "sop_logits": (r.sop_logits, o.sop_logits)}
            else:
                gl = build("ElectraForMaskedLM", os.path.join(out_dir, "generator"))(**kw).logits
                kw["input_ids"] = o.discriminator_input_ids
                rl = build("ElectraForPreTraining", out_dir)(**kw).logits
                got = {"generator_logits": (gl, o.generator_logits), "rtd_logits": (rl, o.rtd_logits)}
    except Exception as e:  # an API difference in some transformers version: report, do not fail
        print(f"    transformers {transformers.__version__} cross-check ({family}) not run: {e!r}")
        return
    for d, info in infos.items():
        missing = [k for k in info.get("missing_keys", []) if k not in HF_TIED_ALIASES]
        assert not missing and not info.get("unexpected_keys"), (d, missing, info.get("unexpected_keys"))
    worst = {k: (a.double() - b.detach()).abs().max().item() for k, (a, b) in got.items()}
    print(f"    transformers {transformers.__version__} cross-check: " +
          " ".join(f"max|d{k}| {v:.1e}" for k, v in worst.items()))
    assert all(v < 1e-9 for v in worst.values()), worst


def summarize(d: str):
    total = 0
    for fn in ("config.json", "model.safetensors", "inputs.safetensors", "expected.safetensors"):
        if not os.path.exists(os.path.join(d, fn)):
            continue
        sz = os.path.getsize(os.path.join(d, fn))
        total += sz
        print(f"    {fn:22s} {sz / 1024:7.1f} KiB")
    if os.path.exists(os.path.join(d, "expected.safetensors")):
        exp = tm.load_safetensors(os.path.join(d, "expected.safetensors"))
        inp = tm.load_safetensors(os.path.join(d, "inputs.safetensors"))
        print("    inputs: " + ", ".join(f"{k}{list(v.shape)}" for k, v in sorted(inp.items())))
        print("    expected: " + ", ".join(f"{k}{list(v.shape)}" for k, v in sorted(exp.items())
                                           if not k.startswith("grad.")) +
              f", + {sum(k.startswith('grad.') for k in exp)} grad.* tensors")
        losses = {k: float(v[0]) for k, v in exp.items() if k.endswith("loss")}
        print("    " + "  ".join(f"{k}={v:.6f}" for k, v in sorted(losses.items())))
    else:
        sd = tm.load_safetensors(os.path.join(d, "model.safetensors"))
        print(f"    model: {len(sd)} tensors")
    print(f"    total {total / 1024:.1f} KiB")


FAMILIES = ("bert", "gpt", "roberta", "albert", "electra")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.path.join(ROOT, "test", "fixtures", "golden"))
    ap.add_argument("--no-check", action="store_true", help="skip the sanity / finite-difference checks")
    ap.add_argument("--only", default=",".join(FAMILIES),
                    help="comma-separated families to build (default: all of " + ",".join(FAMILIES) + ")")
    a = ap.parse_args()
    only = [f.strip() for f in a.only.split(",") if f.strip()]
    bad = [f for f in only if f not in FAMILIES]
    if bad or not only:
        ap.error(f"--only: unknown family {bad} (choose from {','.join(FAMILIES)})")
    torch.set_num_threads(1)
    check = not a.no_check
    print(f"torch {torch.__version__}; writing {a.out}: {', '.join(f for f in FAMILIES if f in only)}")
    dirs = []
    for fam in FAMILIES:
        if fam not in only:
            continue
        d = os.path.join(a.out, fam)
        dirs.append(d)
        if fam == "bert":
            make_bert(d, check)
            if check:
                roundtrip_check(d, lambda: tm.BertForPreTraining(BERT_CFG), bert_run,
                                ["logits", "nsp_logits", "loss", "mlm_loss", "nsp_loss"])
        elif fam == "gpt":
            make_gpt(d, check)
            if check:
                roundtrip_check(d, lambda: tm.GPT2LMHeadModel(GPT_CFG, use_sdpa=False),
                                lambda m, i: m(i["input_ids"], i["labels"]), ["logits", "loss"])
        elif fam == "roberta":
            _, inp, o = make_roberta(d, check)
            if check:
                roundtrip_check(d, lambda: tm.RobertaForMaskedLM(ROBERTA_CFG), roberta_run,
                                ["logits", "loss", "mlm_loss"])
                hf_cross_check(fam, d, inp, o)
        elif fam == "albert":
            _, inp, o = make_albert(d, check)
            if check:
                roundtrip_check(d, lambda: tm.AlbertForPreTraining(ALBERT_CFG), albert_run,
                                ["logits", "sop_logits", "loss", "mlm_loss", "sop_loss"],
                                outputs=("logits", "sop_logits"))
                hf_cross_check(fam, d, inp, o)
        elif fam == "electra":
            _, inp, o = make_electra(d, check)
            dirs.append(os.path.join(d, "generator"))
            if check:
                roundtrip_check(d, electra_ctor, electra_run,
                                ["generator_logits", "rtd_logits", "loss", "mlm_loss", "rtd_loss"],
                                outputs=("generator_logits", "rtd_logits"), load=electra_load,
                                grads=electra_grads)
                hf_cross_check(fam, d, inp, o)
    for d in dirs:
        print(f"  {os.path.relpath(d, ROOT)}:")
        summarize(d)


if __name__ == "__main__":
    main()
