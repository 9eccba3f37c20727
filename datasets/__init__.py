"""One module per data set; `dataloader.py` is the facade that imports them (never the reverse).

- `sprites.py`: the Sprites benchmark, composed from the LPC sprite-sheet parts;
- `builtin.py`: the built-in procedural set with Sprites' factor structure;
- `characters.py`: what those two share (factors, composing layers, the uint8 container);
- `etth1.py`, `airquality.py`, `physionet.py`: the three time-series sets and their published protocols;
- `timeseries.py`: what every time-series set shares (the sequence container with NaN for
  missing values, training-only normalisation, windows of hours as steps);
- `fsdd.py`: speech, the Free Spoken Digit Dataset;
- `fetch.py`: finding the files locally or downloading them, checked by SHA-256.
"""
