"""A training job as the experiment scripts run it: `python train.py` in a process of its own.

A job of its own process starts from nothing each time: its floats do not depend on what ran
before it, and several jobs can run side by side, one thread each.
"""
import os
import subprocess
import sys

from utils import SPYLError

TRAIN_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train.py")


def train_model(dataset, out, run_dir, data_root="", method="spyl", seed=None, flags=(), resume=False, threads=None,
                log=None):
    """`python train.py --dataset DATASET --method METHOD [flags]` with the data set's preset, writing the final
    model to out. Refuses a run folder that already holds a run, unless resume is set and it holds
    a checkpoint: then the run goes on from it. threads: torch's threads in the job (default: its
    own choice); log: an open file that takes the job's output (default: this process's)."""
    again = resume and os.path.isfile(os.path.join(run_dir, "checkpoint.pt"))
    if os.path.exists(run_dir) and not again:
        raise SPYLError(f"{run_dir} already holds a run; delete it or pass --runs-dir elsewhere")
    args = ["--dataset", dataset, "--run-dir", run_dir, "--out", out, *flags] + (["--resume"] if again else [])
    args += ["--data-root", data_root] if data_root else []
    args += ["--method", method] if method != "spyl" else []
    args += ["--seed", str(seed)] if seed is not None else []
    args += ["--threads", str(threads)] if threads else []
    print(f"training: python train.py {' '.join(args)}", file=log or sys.stderr, flush=True)
    done = subprocess.run([sys.executable, TRAIN_SCRIPT, *args], stdout=log, stderr=log)
    if done.returncode != 0:
        where = f"; its output is in {log.name}" if log is not None else ""
        raise SPYLError(f"training job `python train.py {' '.join(args)}` failed (exit status "
                        f"{done.returncode}){where}")
