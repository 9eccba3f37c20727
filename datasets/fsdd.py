"""Free Spoken Digit Dataset (Jackson et al.): 3000 recordings, 6 speakers x 10 digits x 50, 8 kHz mono.

The paper's speech protocol (TIMIT) applied to FSDD:
- features: log-mel spectrogram frames. 40 mel bands over 0-4 kHz (all there is at 8 kHz),
  32 ms windows (256 samples) every 10 ms (80 samples): the customary speech framing,
  fine enough in time for the transitions within a digit, wide enough in frequency to
  resolve the pitch harmonics that tell speakers apart. The log is floored at FLOOR, well
  under the quietest real value (7.7e-11 over the whole set), so no real value is flattened.
  Normalised per band with the mean and standard deviation of the training split's real
  frames (the padding is not counted).
- sequences: each utterance is cut into segments of a fixed number of frames, its end padded
  to a whole segment with frames marked missing (NaN, as the time series mark theirs: the
  model zero-fills them at its input and leaves them out of its reconstruction loss). Two
  units (UNITS): "fsdd", segments of 64 frames (640 ms), which hold a whole isolated word
  (95% of the recordings last at most 0.67 s), so s is static over the word and d_t
  follows its sounds; "fsdd_200ms", the TIMIT protocol's 200 ms segments (20 frames).
- split: recordings 0-4 of every speaker and digit are the test set (the dataset's own),
  5-9 the validation set, 10-49 the training set.
"""
import io
import os
import tarfile

import numpy as np

from datasets.fetch import data_root, download, listing_digest
from datasets.timeseries import TimeSeriesData
from utils import SPYLError

FOLDER = "fsdd"
URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz"
# Over the WAV files, as `(cd recordings && LC_ALL=C sha256sum *.wav) | sha256sum`: any archive
# of the same recordings (ours, the release's) passes.
CONTENT_SHA256 = "1801eae019c063377d98f831d3f93574f259475df7332bb0e3d1b080fb5e6959"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
RATE, N_FFT, HOP, N_MELS = 8000, 256, 80, 40
FLOOR = 1e-11                     # power; the quietest real mel value in FSDD is 7.7e-11
STEP_DIM = N_MELS
SPLITS = {"test": range(0, 5), "valid": range(5, 10), "train": range(10, 50)}   # by recording index


def read_wav(data, name="recording"):
    """WAV bytes -> float32 samples in [-1, 1]; one line for anything that is not 8 kHz mono 16-bit PCM."""
    from scipy.io import wavfile
    try:
        rate, x = wavfile.read(io.BytesIO(data))
    except (ValueError, EOFError, OSError) as e:
        raise SPYLError(f"FSDD: {name} is not a readable WAV file ({str(e)[:60]})") from None
    if rate != RATE:
        raise SPYLError(f"FSDD: {name} is sampled at {rate} Hz; this protocol needs {RATE} Hz recordings")
    if x.ndim != 1 or x.dtype != np.int16:
        raise SPYLError(f"FSDD: {name} is {x.dtype} with shape {x.shape}; expected mono 16-bit PCM")
    return x.astype(np.float32) / 32768


def log_mel(x):
    """Samples -> log-mel frames, ceil(len / hop) x 40: one frame per hop that starts inside the
    recording (the signal is padded by n_fft - hop so the last window fits)."""
    import librosa
    x = np.concatenate([x, np.zeros(-len(x) % HOP + N_FFT - HOP, np.float32)])
    mel = librosa.feature.melspectrogram(y=x, sr=RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, fmin=0,
                                         fmax=RATE / 2, center=False, power=2.0)
    return np.log(np.maximum(mel, FLOOR)).T.astype(np.float32)


def segments(x, frames):
    """Samples -> log-mel segments, n x frames x 40; the frames that pad the last segment are NaN."""
    mel = log_mel(x)
    pad = np.full((-len(mel) % frames, N_MELS), np.nan, np.float32)
    return np.concatenate([mel, pad]).reshape(-1, frames, N_MELS)


def mel_to_audio(frames):
    """Log-mel frames (n x 40, unnormalised; NaN frames are silence) -> samples, by Griffin-Lim (librosa)."""
    import librosa
    return librosa.feature.inverse.mel_to_audio(np.exp(np.nan_to_num(frames.T, nan=np.log(FLOOR))), sr=RATE,
                                                n_fft=N_FFT, hop_length=HOP, fmin=0, fmax=RATE / 2,
                                                center=False, power=2.0, n_iter=64)


def recordings(archive):
    """{file name: WAV bytes} of every recording in a .tar.gz, checked against the content digest."""
    try:
        with tarfile.open(archive) as tf:
            files = {os.path.basename(m.name): tf.extractfile(m).read() for m in tf
                     if m.isfile() and m.name.endswith(".wav") and "/recordings/" in "/" + m.name}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SPYLError(f"FSDD: {archive} is not a readable tar.gz archive ({e}); delete it and fetch it "
                        "again") from None
    if listing_digest(files) != CONTENT_SHA256:
        raise SPYLError(f"FSDD: the recordings in {archive} differ from FSDD v1.0.10 ({len(files)} files, content "
                        f"digest mismatch); replace the archive")
    return files


def parse_name(name):
    """'7_jackson_32.wav' -> (digit 7, speaker 1, index 32)."""
    digit, speaker, index = name[:-4].split("_")
    return int(digit), SPEAKERS.index(speaker), int(index)


class Unit:
    """FSDD cut into sequences of `frames` frames: what dataloader registers under `NAME`."""

    def __init__(self, name, frames):
        self.NAME, self.SEGMENT, self.STEP_DIM = name, frames, STEP_DIM

    def load(self, root=None, download_ok=True):
        return load(root, download_ok, self.SEGMENT, self.NAME)


UNITS = (Unit("fsdd", 64), Unit("fsdd_200ms", 20))


def load(root=None, download_ok=True, frames=64, name="fsdd"):
    """{"train", "valid", "test"}: TimeSeriesData of log-mel segments (frames steps x 40 bands,
    normalised with training statistics, NaN where a segment is padded) with labels `speaker`,
    `digit`, `utterance` per segment; and "mean", "std" (per band)."""
    folder = os.path.join(data_root(root), FOLDER)
    archive = next((os.path.join(folder, f) for f in ("recordings.tar.gz", "free-spoken-digit-dataset-1.0.10.tar.gz")
                    if os.path.isfile(os.path.join(folder, f))), None)
    if archive is None:
        if root or not download_ok:
            raise SPYLError(f"FSDD: no recordings.tar.gz in {folder}; pass --data-root to the folder that holds fsdd/")
        archive = os.path.join(folder, "free-spoken-digit-dataset-1.0.10.tar.gz")
        download(URL, archive, "FSDD v1.0.10")
    files = recordings(archive)
    split = {part: [] for part in SPLITS}
    for utterance, file in enumerate(sorted(files)):
        digit, speaker, index = parse_name(file)
        segs = segments(read_wav(files[file], file), frames)
        part = next(p for p, indices in SPLITS.items() if index in indices)
        split[part].append((segs, np.repeat([[speaker, digit, utterance]], len(segs), axis=0)))
    out = {part: (np.concatenate([s for s, _ in v]), np.concatenate([l for _, l in v])) for part, v in split.items()}
    real = out["train"][0].reshape(-1, N_MELS)
    real = real[~np.isnan(real[:, 0])].astype(np.float64)        # statistics of real frames only
    mean, std = real.mean(0).astype(np.float32), real.std(0).astype(np.float32)
    result = {"mean": mean, "std": std}
    for part, (x, labels) in out.items():
        result[part] = TimeSeriesData(((x - mean) / std).astype(np.float32),
                                      {"speaker": labels[:, 0], "digit": labels[:, 1], "utterance": labels[:, 2]}, name)
    return result
