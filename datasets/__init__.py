"""One module per data set beyond Sprites; `dataloader.py` is the facade that imports them.

- `timeseries.py`: what every time-series set shares (the sequence container with NaN for
  missing values, training-only normalisation, windows of hours as steps);
- `etth1.py`, `airquality.py`, `physionet.py`: the three sets and their published protocols;
- `fetch.py`: finding the files locally or downloading them, checked by SHA-256.
"""
