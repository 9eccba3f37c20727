"""The time-series evaluation of later work (azencot-group/DBSE, `time_series/`) as it runs, bugs
included, so that its published rows can be compared like for like. What it does, read line by
line (file and line numbers in docs/timeseries.md):

- inputs rotated cyclically by whole windows, labels not: ETTh1 by 14 windows, air quality by 27,
  PhysioNet by none (`rotate`);
- PhysioNet hours binned by pandas' left-open intervals (datasets/physionet.py, binning="published");
- every probe reads posterior *samples*, drawn afresh for every batch (`Codes.draw`);
- ETTh1: the training labels are gathered in one shuffled pass over the training loader and
  trained against the batches of another, so inputs and labels are randomly paired; 301 epochs,
  batch 10, the predictor ends in a LeakyReLU (`regress_steps`);
- classification (air-quality month, ICU type): 41 epochs of 5 passes, batch 10 (PhysioNet: 30),
  the checkpoint with the best validation loss kept, the test accuracy averaged over 5 passes of
  sampled codes; a second run goes on training the first run's classifier (`classify`);
- mortality: an LSTM read at floor(hours / 4) - 1, 41 epochs, batch 30 (`classify_sequence`).

Each function returns its test predictions, one row per test sequence, for scores.py.
"""
import copy

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from probes import StepRegressor, fit_sequence_classifier, single_threaded

ROTATION = {"etth1": 14, "airquality": 27, "physionet": 0}  # windows, the `frame_ind` of each script
EPOCHS, PASSES = 41, 5                                        # range(n_epochs + 1) with n_epochs = 40


def rotate(x, windows):
    """Sequences N x T x D rotated so that step `windows` comes first (a cyclic shift of whole windows)."""
    return np.ascontiguousarray(np.roll(x, -windows, axis=1))


class Codes:
    """Posterior means and standard deviations of s (N x s_dim) and d (N x T x d_dim) of a split:
    `draw(idx)` is a fresh sample of each, as the published probes read them."""

    def __init__(self, s_mean, s_std, d_mean, d_std):
        as_tensors = (torch.as_tensor(a, dtype=torch.float32) for a in (s_mean, s_std, d_mean, d_std))
        self.s_mean, self.s_std, self.d_mean, self.d_std = as_tensors

    def __len__(self):
        return len(self.s_mean)

    def draw(self, idx, gen):
        """(s, d) of sequences idx: one sample of each posterior."""
        return self.draw_s(idx, gen), torch.normal(self.d_mean[idx], self.d_std[idx], generator=gen)

    def draw_s(self, idx, gen):
        """s of sequences idx: one sample of its posterior (what a classifier of s reads)."""
        return torch.normal(self.s_mean[idx], self.s_std[idx], generator=gen)


def _batches(n, batch_size, gen=None):
    order = torch.randperm(n, generator=gen) if gen is not None else torch.arange(n)
    return order.split(batch_size)


@single_threaded
def regress_steps(train, y_train, test, seed=0, epochs=301, lr=1e-3, batch_size=10):
    """ETTh1's window oil temperature from [s, d_t] as the published script trains it: labels in
    the order of one shuffled pass, inputs in the order of another. Test predictions N x T."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    # block_labels' pass
    y = torch.as_tensor(np.asarray(y_train), dtype=torch.float32)[torch.randperm(len(train), generator=gen)]
    model = StepRegressor(train.s_mean.shape[1] + train.d_mean.shape[2], out_relu=True)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        start = 0
        for idx in _batches(len(train), batch_size, gen):       # training's own pass: another shuffle
            labels = y[start:start + len(idx)]
            start += len(idx)
            loss = F.l1_loss(model(*train.draw(idx, gen)), labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return torch.cat([model(*test.draw(idx, gen)) for idx in _batches(len(test), batch_size)]).numpy()


@single_threaded
def classify(train, y_train, valid, y_valid, test, n_classes, seed=0, runs=2, batch_size=10, lr=1e-3):
    """A class from sampled s as the published classifier scripts do it; one N x PASSES array of
    test predictions per run, the second run continuing from the first's kept checkpoint."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    yt, yv = (torch.as_tensor(np.asarray(y), dtype=torch.long) for y in (y_train, y_valid))
    head = nn.Sequential(nn.Linear(train.s_mean.shape[1], n_classes), nn.ReLU(), nn.Linear(n_classes, n_classes))
    out = []
    for _ in range(runs):
        opt = torch.optim.Adam(head.parameters(), lr=lr)
        best, kept = float("inf"), copy.deepcopy(head.state_dict())
        for _ in range(EPOCHS):
            for _ in range(PASSES):
                for idx in _batches(len(train), batch_size, gen):
                    loss = F.cross_entropy(head(train.draw_s(idx, gen)), yt[idx])
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
            with torch.no_grad():
                valid_loss = np.mean([F.cross_entropy(head(valid.draw_s(idx, gen)), yv[idx]).item()
                                      for _ in range(PASSES) for idx in _batches(len(valid), batch_size)])
            if valid_loss < best:
                best, kept = valid_loss, copy.deepcopy(head.state_dict())
        head.load_state_dict(kept)
        with torch.no_grad():
            out.append(torch.stack([head(test.draw_s(torch.arange(len(test)), gen)).argmax(1) for _ in range(PASSES)],
                                   1).numpy())
    return out


@single_threaded
def classify_sequence(train, last_train, y_train, test, last_test, seed=0, epochs=EPOCHS, lr=1e-3, batch_size=30):
    """In-hospital death from an LSTM over sampled d (read at `last`) next to sampled s, as the
    published mortality script trains it. Test probabilities N."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.float32)
    lt, le = torch.as_tensor(np.asarray(last_train)), torch.as_tensor(np.asarray(last_test))
    model = fit_sequence_classifier(lambda idx: train.draw(idx, gen), lt, yt, gen, epochs, lr, batch_size)
    with torch.no_grad():
        return torch.sigmoid(model(*test.draw(torch.arange(len(test)), gen), le)).numpy()
