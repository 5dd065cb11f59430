#!/usr/bin/python3
"""PyTorch (CPU) training-throughput baseline for paratrain's `bench` command.

Builds the reference BERT / GPT-2 model of scripts/torch_models.py with the given sizes, feeds random
tokens and times full training steps (zero_grad, forward, backward, AdamW step).

  /usr/bin/python3 scripts/bench_torch.py --arch bert --layers 4 --hidden 256 --heads 4 --ffn 1024 \
      --vocab 30522 --seq 128 --batch 16 --steps 10 --warmup 2 --threads 2 --json

BERT: 15% of the positions labelled (MLM transform + decoder only at those positions, as NVIDIA's
BERT does), random NSP labels, no padding. GPT: labels = next tokens of a random sequence.
With --json prints exactly one JSON object on stdout:
  {"impl":"pytorch","torch":..,"threads":..,"tokens_per_s":..,"step_ms":..,"params":..,...}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time


def _threads_from_argv(argv, default=2):
    for i, x in enumerate(argv):
        if x == "--threads" and i + 1 < len(argv):
            return argv[i + 1]
        if x.startswith("--threads="):
            return x.split("=", 1)[1]
    return str(default)


# Must happen before torch (and its BLAS) is loaded. Debian's torch uses OpenBLAS (pthreads) for GEMMs
# next to its own OpenMP pool; with both busy-waiting on few cores they oversubscribe and step times
# vary wildly. Cap BLAS at the same thread count and let idle OpenMP workers sleep. Explicit
# environment settings win.
_T = _threads_from_argv(sys.argv[1:])
os.environ.setdefault("OPENBLAS_NUM_THREADS", _T)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_models as tm  # noqa: E402


def build(a):
    if a.arch == "bert":
        cfg = tm.BertConfig(vocab_size=a.vocab, hidden_size=a.hidden, num_hidden_layers=a.layers,
                            num_attention_heads=a.heads, intermediate_size=a.ffn,
                            max_position_embeddings=a.positions or a.seq,
                            hidden_dropout_prob=a.dropout, attention_probs_dropout_prob=a.dropout)
        return tm.BertForPreTraining(cfg, mlm_positions_only=True)
    cfg = tm.GPT2Config(vocab_size=a.vocab, n_positions=a.positions or a.seq, n_embd=a.hidden,
                        n_layer=a.layers, n_head=a.heads, n_inner=a.ffn,
                        embd_pdrop=a.dropout, attn_pdrop=a.dropout, resid_pdrop=a.dropout)
    return tm.GPT2LMHeadModel(cfg, use_sdpa=not a.no_sdpa)


def make_batch(a, gen):
    B, T, V = a.batch, a.seq, a.vocab
    if a.arch == "bert":
        ids = torch.randint(5, V, (B, T), generator=gen)
        tt = torch.zeros((B, T), dtype=torch.long)
        tt[:, T // 2:] = 1
        am = torch.ones((B, T), dtype=torch.long)
        labels = torch.full((B, T), tm.IGNORE_INDEX, dtype=torch.long)
        n_lab = max(1, round(0.15 * T))
        for b in range(B):
            pos = torch.randperm(T - 1, generator=gen)[:n_lab] + 1  # never [CLS] at 0
            labels[b, pos] = ids[b, pos]
            ids[b, pos] = 4  # [MASK]
        nsp = torch.randint(0, 2, (B,), generator=gen)
        return dict(input_ids=ids, token_type_ids=tt, attention_mask=am, labels=labels,
                    next_sentence_label=nsp)
    seq = torch.randint(0, V, (B, T + 1), generator=gen)
    return dict(input_ids=seq[:, :T].contiguous(), labels=seq[:, 1:].contiguous())


def adamw(model, lr, wd, foreach):
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        # contract: weight decay on rank-2 weights (not norms, not biases)
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    kw = {}
    if foreach is not None:
        kw["foreach"] = foreach
    try:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8, **kw)
    except TypeError:
        return torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=["bert", "gpt"], required=True)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--ffn", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=None, help="default 30522 (bert) / 50257 (gpt)")
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--positions", type=int, default=None, help="max positions (default: --seq)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--dropout", type=float, default=0.1)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--foreach", choices=["auto", "on", "off"], default="auto",
                    help="AdamW foreach implementation (auto = torch default)")
    ap.add_argument("--no-sdpa", action="store_true", help="GPT: explicit softmax attention even if SDPA exists")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="cuda: the same model on the GPU (timed after synchronising)")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16: autocast to bfloat16 (fp32 weights and AdamW state); CUDA only")
    a = ap.parse_args()
    if a.vocab is None:
        a.vocab = 30522 if a.arch == "bert" else 50257
    if a.steps < 1:
        ap.error("--steps must be >= 1")

    if a.dtype == "bf16" and a.device != "cuda":
        ap.error("--dtype bf16 needs --device cuda")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    gen = torch.Generator().manual_seed(a.seed + 1)
    dev = torch.device(a.device)
    if a.device == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32, as in paratrain's GEMMs
        torch.backends.cudnn.allow_tf32 = False
    model = build(a).train().to(dev)
    opt = adamw(model, a.lr, a.weight_decay, {"auto": None, "on": True, "off": False}[a.foreach])
    batch = {k: v.to(dev) for k, v in make_batch(a, gen).items()}
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if a.dtype == "bf16"
                else torch.autocast(a.device, enabled=False))

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast:
            if a.arch == "bert":
                out = model(**batch)
            else:
                out = model(batch["input_ids"], batch["labels"])
        out.loss.backward()
        opt.step()
        return out.loss.item()  # .item() synchronises: the step's time is the GPU's

    losses = []
    for _ in range(a.warmup):
        losses.append(step())
    times = []
    for _ in range(a.steps):
        t0 = time.perf_counter()
        losses.append(step())
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    res = {
        "impl": "pytorch",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name() if a.device == "cuda" else "cpu",
        "dtype": a.dtype,
        "threads": a.threads,
        "tokens_per_s": a.batch * a.seq / med,
        "step_ms": med * 1000.0,
        "params": tm.count_params(model),
        "arch": a.arch,
        "layers": a.layers, "hidden": a.hidden, "heads": a.heads, "ffn": a.ffn, "vocab": a.vocab,
        "seq": a.seq, "batch": a.batch, "steps": a.steps, "warmup": a.warmup, "dropout": a.dropout,
        "step_ms_min": min(times) * 1000.0,
        "step_ms_mean": sum(times) / len(times) * 1000.0,
        "loss_first": losses[0], "loss_last": losses[-1],
        "env": {k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")},
        "sdpa": bool(a.arch == "gpt" and not a.no_sdpa and tm.has_sdpa()),
    }
    if a.json:
        print(json.dumps(res))
    else:
        print(f"pytorch {torch.__version__} {a.arch} L{a.layers} H{a.hidden} A{a.heads} F{a.ffn} "
              f"V{a.vocab} T{a.seq} B{a.batch} threads={a.threads} params={res['params']:,}")
        print(f"  step {res['step_ms']:.1f} ms (median of {a.steps}, min {res['step_ms_min']:.1f}) -> "
              f"{res['tokens_per_s']:.0f} tokens/s; loss {losses[0]:.4f} -> {losses[-1]:.4f} "
              f"(ln V = {math.log(a.vocab):.4f})")


if __name__ == "__main__":
    main()
