"""Probes: small supervised heads trained on frozen codes, the way the literature reads what a
representation holds (time series, speech). Each is a few hundred lines of protocol in
others' code; here each is one function that takes arrays and a seed and returns a score.

- `classify`: Linear-ReLU-Linear from a code (s, or d averaged over steps) to a class.
- `regress_steps`: an MLP from [s, d_t] to a value per step (ETTh1's window oil temperature), L1 loss.
- `frozen_codes`: the posterior means a probe reads.
- `classify_sequence`: an LSTM over d_1..d_T, its state at the last real step next to s, an MLP,
  a probability (PhysioNet's in-hospital death).
"""
import contextlib
import functools

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import SPYLError


@contextlib.contextmanager
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def single_threaded(fn):
    """Run a probe on one CPU thread: a matrix product summed by two threads adds in another
    order than by one, and a probe's figure moved with the thread count (0.680 vs 0.667).
    These heads are small enough that one thread is as fast."""
    @functools.wraps(fn)
    def wrapper(*args, **kw):
        with _one_thread():
            return fn(*args, **kw)
    return wrapper


@torch.no_grad()
def frozen_codes(model, data, device="cpu", batch_size=512, with_std=False):
    """Posterior means of a whole data set, in eval mode: s N x s_dim, d N x T x d_dim (numpy);
    with_std: (s_mean, s_std, d_mean, d_std), for probes that read posterior samples."""
    model.eval()
    parts = []
    for start in range(0, len(data), batch_size):
        s_mean, s_logvar, d_mean, d_logvar = model.encode(data.batch(np.arange(start, min(start + batch_size,
                                                                                          len(data))), device))
        parts.append([t.cpu() for t in (s_mean, (0.5 * s_logvar).exp(), d_mean, (0.5 * d_logvar).exp())])
    s_mean, s_std, d_mean, d_std = (torch.cat(p).numpy() for p in zip(*parts))
    return (s_mean, s_std, d_mean, d_std) if with_std else (s_mean, d_mean)


def mean_std(runs):
    """[{figure: value}, ...] over runs (seeds) -> {figure: {"mean", "std"}}."""
    return {k: {"mean": float(np.mean([r[k] for r in runs])),
                "std": float(np.std([r[k] for r in runs]))} for k in runs[0]}


def _tensors(*arrays):
    return [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in arrays]


def _check(x, y, what):
    if len(x) != len(y) or len(x) == 0:
        raise SPYLError(f"{what}: {len(x)} inputs and {len(y)} targets; they must be as many, and more than none")


@single_threaded
def classify(x_train, y_train, x_test, y_test, n_classes, seed=0, epochs=300, lr=1e-2, hidden=None):
    """Accuracy on the test set of a Linear(hidden)-ReLU-Linear head trained full-batch with
    cross-entropy (Adam) on (x_train N x D, y_train N ints); also returns the test probabilities.
    hidden defaults to n_classes, the width of the published time-series classifier."""
    _check(x_train, y_train, "classify")
    torch.manual_seed(seed)
    xt, xe = _tensors(x_train, x_test)
    mean, std = xt.mean(0), xt.std(0).clamp_min(1e-6)  # standardised with training statistics
    xt, xe = (xt - mean) / std, (xe - mean) / std
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    hidden = hidden or n_classes
    head = nn.Sequential(nn.Linear(xt.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, n_classes))
    opt = torch.optim.Adam(head.parameters(), lr=lr)
    for _ in range(epochs):
        loss = F.cross_entropy(head(xt), yt)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        probs = head(xe).softmax(1).numpy()
    return float((probs.argmax(1) == np.asarray(y_test)).mean()), probs


class StepRegressor(nn.Module):
    """[s, d_t] -> a value per step: BatchNorm over the features, then 32 and 8 LeakyReLU units;
    out_relu: a LeakyReLU on the output too, as the published ETTh1 predictor has."""

    def __init__(self, dim, out_relu=False):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.net = nn.Sequential(nn.Linear(dim, 32), nn.LeakyReLU(), nn.Linear(32, 8), nn.LeakyReLU(), nn.Linear(8, 1),
                                 *([nn.LeakyReLU()] if out_relu else []))

    def forward(self, s, d):
        h = torch.cat([d, s[:, None].expand(-1, d.shape[1], -1)], dim=2)   # B x T x (d + s)
        return self.net(self.norm(h.flatten(0, 1))).view(d.shape[:2])     # B x T


@single_threaded
def regress_steps(s_train, d_train, y_train, s_test, d_test, seed=0, epochs=300, lr=1e-3, batch_size=10):
    """Test predictions (N x T) of a StepRegressor trained with L1 loss (Adam) on per-step
    targets y (N x T, in the target's own units)."""
    _check(s_train, y_train, "regress_steps")
    torch.manual_seed(seed)
    st, dt, yt, se, de = _tensors(s_train, d_train, y_train, s_test, d_test)
    model = StepRegressor(st.shape[1] + dt.shape[2])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(st), generator=gen).split(batch_size):
            if len(idx) < 2:  # BatchNorm needs two
                continue
            loss = F.l1_loss(model(st[idx], dt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return model(se, de).numpy()


class SequenceClassifier(nn.Module):
    """An LSTM (hidden 32) over d, its output at the last real step next to s, 16 ReLU units,
    dropout 0.5, one logit."""

    def __init__(self, s_dim, d_dim, hidden=32):
        super().__init__()
        self.lstm = nn.LSTM(d_dim, hidden, batch_first=True)
        self.net = nn.Sequential(nn.Linear(hidden + s_dim, 16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 1))

    def forward(self, s, d, last):
        h, _ = self.lstm(d)                                                # B x T x hidden
        return self.net(torch.cat([h[torch.arange(len(h)), last], s], dim=1)).squeeze(1)


@single_threaded
def classify_sequence(s_train, d_train, last_train, y_train, s_test, d_test, last_test, seed=0, epochs=40, lr=1e-3,
                      batch_size=30):
    """Test probabilities of a SequenceClassifier trained with binary cross-entropy (Adam, gradient
    norm clipped at 1); last: index of each sequence's last real step."""
    _check(s_train, y_train, "classify_sequence")
    torch.manual_seed(seed)
    st, dt, yt, se, de = _tensors(s_train, d_train, y_train, s_test, d_test)
    lt, le = torch.as_tensor(np.asarray(last_train)), torch.as_tensor(np.asarray(last_test))
    gen = torch.Generator().manual_seed(seed)
    model = fit_sequence_classifier(lambda idx: (st[idx], dt[idx]), lt, yt, gen, epochs, lr, batch_size)
    with torch.no_grad():
        return torch.sigmoid(model(se, de, le)).numpy()


def fit_sequence_classifier(codes, last, y, gen, epochs=40, lr=1e-3, batch_size=30):
    """A SequenceClassifier trained with binary cross-entropy (Adam, gradient norm clipped at 1)
    on shuffled batches; codes(idx) gives the (s, d) of sequences idx. Returned in eval mode."""
    s, d = codes(torch.arange(2))
    model = SequenceClassifier(s.shape[1], d.shape[2])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y), generator=gen).split(batch_size):
            loss = F.binary_cross_entropy_with_logits(model(*codes(idx), last[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    return model.eval()
