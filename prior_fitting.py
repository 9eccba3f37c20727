"""Fit the learned prior p(d_t | d_<t) of a trained model to its own posteriors, nothing else.

`fit_prior.py` runs this stage on a model file; `train.py --fit-prior` runs it after training.

In joint training the prior chain is one small part of a large loss and lags behind the
posteriors it should predict: its samples blend poses (see the README). With the encoder
frozen, its target is fixed, so it can be fitted on its own, cheaply, on a CPU:

1. encode the training set once, in eval mode: the posterior means and log-variances of
   d (N x T x d_dim), about 1 MB per 1000 sequences;
2. hold out a tenth of the training characters (never the test split) for validation;
3. minimise the model's own KL(d) term, sum_t KL(q(d_t | x) || p(d_t | d_<t)), over the
   prior's parameters alone, teacher-forced as in training (--inputs sample: d_<t drawn from
   the posterior; mean: its means), with Adam, evaluating the validation KL every
   --eval-every steps on fixed draws and stopping when it has not improved for --patience
   evaluations;
4. keep the best prior (everything else bit-for-bit the input's) and a log of every fit.
"""
import copy
import sys
import time

import numpy as np
import torch
from tqdm import tqdm

from dataloader import hold_out
from model import kl_normal
from utils import SPYLError, figure, save_figure

INPUTS = ("sample", "mean")


@torch.no_grad()
def encode_posteriors(model, data, device, batch_size=256, progress=True):
    """Posterior means and log-variances of d for every sequence, in eval mode: N x T x d_dim each."""
    model.eval()
    means, logvars = [], []
    for start in tqdm(range(0, len(data), batch_size), desc="encoding", unit="batch", disable=not progress,
                      leave=False, file=sys.stderr):
        _, _, d_mean, d_logvar = model.encode(data.batch(np.arange(start, min(start + batch_size, len(data))), device))
        means.append(d_mean.float())
        logvars.append(d_logvar.float())
    return torch.cat(means), torch.cat(logvars)


def prior_kl(model, d_mean, d_logvar, inputs="sample", eps=None):
    """The model's KL(d) term, sum over steps and dimensions of KL(q(d_t|x) || p(d_t | d_<t)),
    per sequence (mean over the batch). The chain is teacher-forced with d drawn from the
    posterior (inputs "sample", with noise eps if given) or with its means ("mean")."""
    if inputs == "sample":
        eps = torch.randn_like(d_mean) if eps is None else eps
        d = d_mean + eps * torch.exp(0.5 * d_logvar)
    else:
        d = d_mean
    p_mean, p_logvar = model.prior(d)
    return kl_normal(d_mean, d_logvar, p_mean.float(), p_logvar.float()).sum() / len(d_mean)


@torch.no_grad()
def validation_kl(model, d_mean, d_logvar, eps, batch_size=1024):
    """KL(d) per sequence on held-out posteriors with fixed noise eps: the same number for the same prior.
    Always teacher-forced with samples, the way the term is defined in training."""
    total = 0.0
    for start in range(0, len(d_mean), batch_size):
        sl = slice(start, start + batch_size)
        total += prior_kl(model, d_mean[sl], d_logvar[sl], "sample", eps[sl]).item() * len(d_mean[sl])
    return total / len(d_mean)


def fit_prior(model, fit_post, val_post, steps=4000, lr=1e-3, batch_size=128, inputs="sample", eval_every=100,
              patience=5, seed=0, progress=True):
    """Fit the prior's parameters of `model` (in place) to posteriors (d_mean, d_logvar) of the
    fitting set, keeping the parameters of the best validation KL. Returns the log: a list of
    {"step", "train_kl", "val_kl"}, the first row before any step."""
    if inputs not in INPUTS:
        raise SPYLError(f"unknown --inputs {inputs!r}; choose one of {', '.join(INPUTS)}")
    gen = torch.Generator().manual_seed(seed)
    val_eps = torch.randn(val_post[0].shape, generator=gen).to(val_post[0].device)
    params = model.prior_parameters()
    optimizer = torch.optim.Adam(params, lr=lr)
    model.eval()  # the prior has no BatchNorm or dropout; eval keeps every other module as it was
    best = validation_kl(model, *val_post, val_eps)
    best_state, since_best, log = copy.deepcopy(model.state_dict()), 0, [{"step": 0, "train_kl": None, "val_kl": best}]
    n, window = len(fit_post[0]), []
    bar = tqdm(total=steps, desc="fitting the prior", unit="step", disable=not progress, leave=False, file=sys.stderr,
               dynamic_ncols=True)
    for step in range(1, steps + 1):
        idx = torch.randint(n, (batch_size,), generator=gen)
        loss = prior_kl(model, fit_post[0][idx], fit_post[1][idx], inputs)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        window.append(loss.item())
        bar.update(1)
        if step % eval_every and step != steps:
            continue
        val = validation_kl(model, *val_post, val_eps)
        log.append({"step": step, "train_kl": float(np.mean(window)), "val_kl": val})
        window = []
        bar.set_postfix_str(f"val KL(d) {val:.3f} (start {log[0]['val_kl']:.3f}, best {min(best, val):.3f})")
        if val < best:
            best, best_state, since_best = val, copy.deepcopy(model.state_dict()), 0
        else:
            since_best += 1
            if since_best >= patience:
                break
    bar.close()
    model.load_state_dict(best_state)
    return log


def fit_grid(model, fit_post, val_post, lrs, inputs_list, **kw):
    """fit_prior from the same starting prior for every (learning rate, inputs); `model` keeps the
    prior of the lowest validation KL. kw: fit_prior's other settings. Returns (a record of each
    fit with its log, the record of the one kept)."""
    start = copy.deepcopy(model.state_dict())
    fits, best_state, chosen = [], None, None
    for lr in lrs:
        for inputs in inputs_list:
            model.load_state_dict(start)
            t0 = time.perf_counter()
            log = fit_prior(model, fit_post, val_post, lr=lr, inputs=inputs, **kw)
            best = min(log, key=lambda r: r["val_kl"])
            fits.append({"lr": lr, "inputs": inputs, "seconds": round(time.perf_counter() - t0, 1),
                         "best_step": best["step"],
                         "val_kl_before": log[0]["val_kl"], "val_kl_after": best["val_kl"], "log": log})
            print(f"lr {lr:g}, inputs {inputs}: validation KL(d) per sequence {log[0]['val_kl']:.3f} -> "
                  f"{best['val_kl']:.3f} (best at step {best['step']} of {log[-1]['step']}), "
                  f"{fits[-1]['seconds']:.0f} s", file=sys.stderr)
            if chosen is None or best["val_kl"] < chosen["val_kl_after"]:
                best_state, chosen = copy.deepcopy(model.state_dict()), fits[-1]
    model.load_state_dict(best_state)
    return fits, chosen


def fit_to_training_set(model, train, device, lrs=(1e-3,), inputs_list=("sample",), seed=0, steps=4000, batch_size=128,
                        eval_every=100, patience=5, progress=True):
    """The whole stage on a model (changed in place): hold out a tenth of the training characters,
    encode both parts once, fit_grid over (learning rate, inputs). Returns (the log as
    fit_prior.py writes it, less the file names; the fits with their curves)."""
    if not model.prior_parameters():
        raise SPYLError(f"this {model.method} model has no learned prior (its p(d_t) is N(0, I)): there is nothing to "
                        "fit")
    fit_set, val_set = hold_out(train, seed=seed)
    t0 = time.perf_counter()
    fit_post = encode_posteriors(model, fit_set, device, progress=progress)
    val_post = encode_posteriors(model, val_set, device, progress=progress)
    encode_s = time.perf_counter() - t0
    print(f"encoded {len(fit_set)} fitting and {len(val_set)} validation sequences (held-out training characters) "
          f"in {encode_s:.0f} s", file=sys.stderr)
    fits, chosen = fit_grid(model, fit_post, val_post, lrs, inputs_list, steps=steps, batch_size=batch_size,
                            eval_every=eval_every, patience=patience, seed=seed, progress=progress)
    report = {"fit_sequences": len(fit_set), "val_sequences": len(val_set), "steps": steps, "batch_size": batch_size,
              "eval_every": eval_every, "patience": patience, "seed": seed, "device": str(device),
              "encode_seconds": round(encode_s, 1), "chosen": {k: v for k, v in chosen.items() if k != "log"},
              "val_kl_before": chosen["val_kl_before"], "val_kl_after": chosen["val_kl_after"], "fits": fits}
    return report, fits


def plot_fits(fits, path):
    """Validation KL(d) against step for each fit of a grid (the records fit_grid returns), as a PNG."""
    fig, ax = figure(1, 1, figsize=(5.5, 3.4))
    for f in fits:
        ax.plot([r["step"] for r in f["log"]], [r["val_kl"] for r in f["log"]], marker=".",
                label=f"lr {f['lr']:g}, inputs {f['inputs']}")
    ax.set_xlabel("Adam step (prior only)")
    ax.set_ylabel("validation KL(d) per sequence (nats)")
    ax.set_title("fitting the prior to the posteriors")
    ax.legend(fontsize=8)
    save_figure(fig, path)
