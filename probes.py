"""Probes: small supervised heads trained on frozen codes, the way the literature reads what a
representation holds (time series, speech). Each is a few hundred lines of protocol in
others' code; here each is one function that takes arrays and a seed and returns a score.

- `classify`: Linear-ReLU-Linear from a code (s, or d averaged over steps) to a class.
- `regress_steps`: an MLP from [s, d_t] to a value per step (ETTh1's window oil temperature), L1 loss.
- `frozen_codes`: the posterior means a probe reads.
- `classify_sequence`: an LSTM over d_1..d_T, its state at the last real step next to s, an MLP,
  a probability (PhysioNet's in-hospital death).
"""
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from utils import SPYLError


@torch.no_grad()
def frozen_codes(model, data, device="cpu", batch_size=512):
    """Posterior means of a whole data set, in eval mode: s N x s_dim, d N x T x d_dim (numpy)."""
    model.eval()
    s, d = [], []
    for start in range(0, len(data), batch_size):
        s_mean, _, d_mean, _ = model.encode(data.batch(np.arange(start, min(start + batch_size, len(data))), device))
        s.append(s_mean.cpu())
        d.append(d_mean.cpu())
    return torch.cat(s).numpy(), torch.cat(d).numpy()


def mean_std(runs):
    """[{figure: value}, ...] over runs (seeds) -> {figure: {"mean", "std"}}."""
    return {k: {"mean": float(np.mean([r[k] for r in runs])), "std": float(np.std([r[k] for r in runs]))} for k in runs[0]}


def _tensors(*arrays):
    return [torch.as_tensor(np.asarray(a), dtype=torch.float32) for a in arrays]


def _check(x, y, what):
    if len(x) != len(y) or len(x) == 0:
        raise SPYLError(f"{what}: {len(x)} inputs and {len(y)} targets; they must be as many, and more than none")


def classify(x_train, y_train, x_test, y_test, n_classes, seed=0, epochs=300, lr=1e-2):
    """Accuracy on the test set of a Linear(n_classes)-ReLU-Linear head trained full-batch with
    cross-entropy (Adam) on (x_train N x D, y_train N ints); also returns the test probabilities."""
    _check(x_train, y_train, "classify")
    torch.manual_seed(seed)
    xt, xe = _tensors(x_train, x_test)
    mean, std = xt.mean(0), xt.std(0).clamp_min(1e-6)  # standardised with training statistics
    xt, xe = (xt - mean) / std, (xe - mean) / std
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.long)
    head = nn.Sequential(nn.Linear(xt.shape[1], n_classes), nn.ReLU(), nn.Linear(n_classes, n_classes))
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
    """[s, d_t] -> a value per step: BatchNorm over the features, then 32 and 8 LeakyReLU units."""

    def __init__(self, dim):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim)
        self.net = nn.Sequential(nn.Linear(dim, 32), nn.LeakyReLU(), nn.Linear(32, 8), nn.LeakyReLU(), nn.Linear(8, 1))

    def forward(self, s, d):
        h = torch.cat([d, s[:, None].expand(-1, d.shape[1], -1)], dim=2)   # B x T x (d + s)
        return self.net(self.norm(h.flatten(0, 1))).view(d.shape[:2])     # B x T


def regress_steps(s_train, d_train, y_train, s_test, d_test, y_test, seed=0, epochs=300, lr=1e-3, batch_size=10):
    """Mean absolute error on the test set of a StepRegressor trained with L1 loss (Adam) on
    per-step targets y (N x T, in the target's own units)."""
    _check(s_train, y_train, "regress_steps")
    torch.manual_seed(seed)
    st, dt, yt, se, de, ye = _tensors(s_train, d_train, y_train, s_test, d_test, y_test)
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
        return float(F.l1_loss(model(se, de), ye).item())


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


def classify_sequence(s_train, d_train, last_train, y_train, s_test, d_test, last_test, seed=0, epochs=40, lr=1e-3, batch_size=30):
    """Test probabilities of a SequenceClassifier trained with binary cross-entropy (Adam, gradient
    norm clipped at 1); last: index of each sequence's last real step."""
    _check(s_train, y_train, "classify_sequence")
    torch.manual_seed(seed)
    st, dt, yt, se, de = _tensors(s_train, d_train, y_train, s_test, d_test)
    lt, le = torch.as_tensor(np.asarray(last_train)), torch.as_tensor(np.asarray(last_test))
    model = SequenceClassifier(st.shape[1], dt.shape[2])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(st), generator=gen).split(batch_size):
            loss = F.binary_cross_entropy_with_logits(model(st[idx], dt[idx], lt[idx]), yt[idx])
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
    model.eval()
    with torch.no_grad():
        return torch.sigmoid(model(se, de, le)).numpy()
