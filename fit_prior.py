"""Fit the learned prior p(d_t | d_<t) of a trained model to its own posteriors, nothing else.

    python fit_prior.py                                   # weights/model.pth -> runs/fit_prior/model.pth
    python fit_prior.py --weights my_model.pth --out my_model_prior.pth
    python fit_prior.py --plot weights/runs/fit_prior.json --figure fig/fit_prior.png   # the curves of a log

The stage itself, and why it pays, is described in prior_fitting.py.
"""
import json
import os

from dataloader import load_dataset
from model import SPYL
from prior_fitting import INPUTS, fit_to_training_set, plot_fits
from utils import (ArgumentParser, ListOf, SPYLError, atomic_write, between, load_checkpoint, one_of, pick_device,
                   run_main, seed_everything)


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default="weights/model.pth",
                   help="the model whose prior to fit (SPYL.save or a train.py checkpoint)")
    p.add_argument("--out", default="runs/fit_prior/model.pth",
                   help="where the model with the fitted prior goes (+ .json log beside it)")
    p.add_argument("--steps", type=between(1, 10**6), default=4000, help="at most this many Adam steps")
    p.add_argument("--lr", type=ListOf(between(1e-8, 1.0, float)), default=[1e-3],
                   help="learning rate; several (1e-3,3e-3): fit each, keep the best")
    p.add_argument("--batch-size", type=between(1, 10**6), default=128)
    p.add_argument("--inputs", type=ListOf(one_of(*INPUTS)), default=["sample"],
                   help=f"what the chain is teacher-forced with: {' or '.join(INPUTS)}; both (sample,mean): fit "
                        "each, keep the best")
    p.add_argument("--eval-every", type=between(1, 10**6), default=100, help="steps between validation KLs")
    p.add_argument("--patience", type=between(1, 10**6), default=5,
                   help="stop after this many validation KLs without improvement")
    p.add_argument("--seed", type=between(0, 2**32 - 1), default=0)
    p.add_argument("--sheets", default="", help="folder of sprite-sheet parts or pre-built npy files")
    p.add_argument("--data-dir", default="data")
    p.add_argument("--data-root", default="", help="folder of the time-series or speech data sets")
    p.add_argument("--chars", type=between(0, 6 ** 4), default=0, help="built-in set only: this many characters")
    p.add_argument("--device", default="auto")
    p.add_argument("--plot", metavar="JSON",
                   help="only redraw the validation curves of a log this script wrote (--figure: where)")
    p.add_argument("--figure", default="",
                   help="with --plot: the PNG to write (default: beside the JSON, .json -> .png)")
    p.add_argument("--half", action="store_true",
                   help="store the weights in fp16 (half the bytes; loaded back in fp32), as released files are")
    a = p.parse_args(argv)
    if a.plot:
        try:
            with open(a.plot) as f:
                fits = json.load(f)["fits"]
        except (OSError, ValueError, KeyError) as e:
            raise SPYLError(f"cannot read {a.plot} as a fit_prior.py log ({e})") from None
        path = a.figure or os.path.splitext(a.plot)[0] + ".png"
        plot_fits(fits, path)
        print(f"wrote {path}")
        return
    if os.path.abspath(a.out) == os.path.abspath(a.weights):
        raise SPYLError(f"--out {a.out} is the input model; write the fitted model elsewhere and compare the two first")
    device = pick_device(a.device)
    seed_everything(a.seed)
    ckpt = load_checkpoint(a.weights)
    model = SPYL.from_checkpoint(ckpt, a.weights).to(device).eval()
    data_name = ckpt.get("data", "sprites")
    train, _ = load_dataset(data_name, a.data_dir, a.sheets or None, a.chars or None, a.data_root or None)
    report, fits = fit_to_training_set(model, train, device, a.lr, a.inputs, steps=a.steps, batch_size=a.batch_size,
                                       eval_every=a.eval_every, patience=a.patience, seed=a.seed)
    model.save(a.out, data=data_name, half=a.half)
    report = {"weights": a.weights, "out": a.out, "data": data_name, **report, "half": a.half}
    log_path = os.path.splitext(a.out)[0] + ".json"
    atomic_write(log_path, lambda f: json.dump(report, f, indent=1), mode="w")
    plot_fits(fits, os.path.splitext(a.out)[0] + ".png")
    print(f"wrote {a.out}, {log_path} and its curves (.png)")


if __name__ == "__main__":
    run_main(main)
