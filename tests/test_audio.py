"""Speech: the FSDD loader against ../shared/audio, the features on a known tone, the EER on
scores with a known answer, bad input, and the experiments script end to end."""
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest
from scipy.io import wavfile

from audio_experiments import eer_interval, equal_error_rate, pair_scores
from conftest import ROOT
from datasets import fsdd
from methods import METHODS
from utils import SPYLError

SHARED = os.path.join(ROOT, "..", "shared", "audio")
needs_data = pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/audio not present")


@pytest.fixture(scope="module")
def splits():
    return fsdd.load(SHARED)


@needs_data
def test_split_shapes_and_speakers(splits):
    parts = [splits[k] for k in ("train", "valid", "test")]
    assert all(p.x.shape[1:] == (64, 40) for p in parts)                              # 640 ms sequences: a whole word
    assert [len(np.unique(p.labels["utterance"])) for p in parts] == [2400, 300, 300]  # recordings 10-49 / 5-9 / 0-4
    for part in parts:
        assert set(part.labels["speaker"]) == set(range(6)) and set(part.labels["digit"]) == set(range(10))
    utts = [set(p.labels["utterance"]) for p in parts]
    assert not (utts[0] & utts[1]) and not (utts[0] & utts[2]) and not (utts[1] & utts[2])
    short = fsdd.load(SHARED, frames=20)["train"]
    # the 200 ms unit: same utterances
    assert short.x.shape[1:] == (20, 40) and set(short.labels["utterance"]) == utts[0]


@needs_data
def test_statistics_count_real_frames_only(splits):
    x = splits["train"].x.reshape(-1, 40)
    pad = np.isnan(x[:, 0])
    # padding: missing, whole frames
    assert 0.2 < pad.mean() < 0.5 and np.isnan(x[pad]).all() and not np.isnan(x[~pad]).any()
    # z-scored over real frames
    assert np.allclose(x[~pad].mean(0), 0, atol=1e-3) and np.allclose(x[~pad].std(0), 1, atol=1e-3)
    floored = (x * splits["std"] + splits["mean"] <= np.log(fsdd.FLOOR) + 1e-3)[~pad]
    speaker = np.repeat(splits["train"].labels["speaker"], 64)[~pad]
    # under 1e-6, the old floor: 34%, up to 51% a speaker
    assert floored.mean() < 0.005 and max(floored[speaker == k].mean() for k in range(6)) < 0.02


@needs_data
def test_the_log_floor_is_under_every_real_value():
    archive = os.path.join(SHARED, "fsdd", next(f for f in os.listdir(os.path.join(SHARED,
                                                                                   "fsdd")) if f.endswith(".tar.gz")))
    import librosa
    for name, data in sorted(fsdd.recordings(archive).items())[::30]:               # 100 recordings, all speakers
        mel = librosa.feature.melspectrogram(y=fsdd.read_wav(data), sr=fsdd.RATE, n_fft=fsdd.N_FFT, hop_length=fsdd.HOP,
                                             n_mels=fsdd.N_MELS, fmin=0, fmax=fsdd.RATE / 2, center=False, power=2.0)
        # only digital silence meets the floor
        assert mel[mel > 0].min() > 10 * fsdd.FLOOR, name


def tone(freq, seconds=0.4, amplitude=0.5):
    t = np.arange(int(seconds * fsdd.RATE)) / fsdd.RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_log_mel_of_a_known_tone():
    import librosa
    centres = librosa.mel_frequencies(n_mels=fsdd.N_MELS + 2, fmin=0, fmax=fsdd.RATE / 2)[1:-1]
    for freq in (300.0, 1000.0, 2500.0):
        seg = fsdd.segments(tone(freq), 20)
        assert seg.shape == (2, 20, 40) and not np.isnan(seg).any()       # 0.4 s -> two 200 ms segments of 20 frames
        band = seg[0, 5:15].mean(0).argmax()                              # away from the padded end
        assert abs(centres[band] - freq) <= np.diff(centres).max()        # the peak sits in the tone's band
    quiet, loud = fsdd.segments(tone(1000.0, amplitude=0.25), 20), fsdd.segments(tone(1000.0, amplitude=0.5), 20)
    word = fsdd.segments(tone(1000.0, seconds=0.305), 64)                 # 31 frames start inside 0.305 s
    assert word.shape == (1, 64, 40) and np.isnan(word[0, 31:]).all() and not np.isnan(word[0, :31]).any()
    band = quiet[0, 5:15].mean(0).argmax()
    # power: x2 -> +log 4
    assert loud[0, 5:15, band].mean() - quiet[0, 5:15, band].mean() == pytest.approx(math.log(4), abs=0.01)


def test_equal_error_rate_on_constructed_scores():
    assert equal_error_rate([0.9, 0.8, 0.2, 0.1], [1, 1, 0, 0]) == 0.0               # perfectly separated
    rng = np.random.default_rng(0)
    same = np.concatenate([rng.normal(1, 1, 100_000), rng.normal(0, 1, 100_000)])
    labels = np.r_[np.ones(100_000), np.zeros(100_000)]
    from scipy.stats import norm
    assert equal_error_rate(same, labels) == pytest.approx(norm.cdf(-0.5), abs=0.005)  # two unit Gaussians 1 apart
    assert equal_error_rate(rng.normal(size=20_000), rng.integers(0, 2, 20_000)) == pytest.approx(0.5, abs=0.02)
    with pytest.raises(SPYLError, match="both target and non-target"):
        equal_error_rate([0.1, 0.2], [1, 1])
    scores, targets = pair_scores(np.array([[1.0, 0], [2, 0], [0, 1]]), np.array([0, 0, 1]))
    assert np.allclose(scores, [1, 0, 0]) and targets.tolist() == [1, 0, 0]           # pairs (0,1), (0,2), (1,2)


def test_equal_error_rate_is_the_one_of_scikit_learns_roc_curve():
    from sklearn.metrics import roc_curve
    rng = np.random.default_rng(1)
    for scores in (rng.normal(size=3000), rng.integers(0, 20, 3000) / 20):          # continuous, and many ties
        targets = (rng.random(3000) < 0.3 + 0.3 * (scores > np.median(scores))).astype(int)
        fpr, tpr, _ = roc_curve(targets, scores)
        fnr = 1 - tpr
        i = int(np.flatnonzero(fnr <= fpr)[0])
        t = (fnr[i - 1] - fpr[i - 1]) / ((fnr[i - 1] - fpr[i - 1]) - (fnr[i] - fpr[i]))
        assert equal_error_rate(scores, targets) == pytest.approx(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]), abs=1e-12)


def test_eer_interval_holds_the_figure_and_narrows_with_more_utterances():
    rng = np.random.default_rng(0)
    widths = []
    for n in (60, 600):
        speakers = rng.integers(0, 6, n)
        # a code that knows the speaker, noisily
        codes = np.eye(6)[speakers] + rng.normal(0, 0.6, (n, 6))
        eer = equal_error_rate(*pair_scores(codes, speakers))
        low, high = eer_interval([codes], speakers, resamples=100)
        assert low < eer < high
        widths.append(high - low)
    assert widths[1] < 0.6 * widths[0]
    low, high = eer_interval([np.eye(6)[speakers] * 1.0], speakers, resamples=20)   # separates the speakers perfectly
    assert low == high == 0.0


def wav_bytes(x, rate):
    buf = io.BytesIO()
    wavfile.write(buf, rate, x)
    return buf.getvalue()


def test_bad_recordings_get_one_line():
    good = (tone(440) * 32767).astype(np.int16)
    assert fsdd.read_wav(wav_bytes(good, 8000)).shape == good.shape
    with pytest.raises(SPYLError, match="sampled at 16000 Hz; this protocol needs 8000 Hz"):
        fsdd.read_wav(wav_bytes(good, 16000), "x.wav")
    with pytest.raises(SPYLError, match="expected mono 16-bit PCM"):
        fsdd.read_wav(wav_bytes(np.stack([good, good], 1), 8000), "x.wav")
    with pytest.raises(SPYLError, match="not a readable WAV file"):
        fsdd.read_wav(b"RIFF\x00\x00garbage", "x.wav")


def test_missing_or_damaged_archive_gets_one_line(tmp_path):
    (tmp_path / "fsdd").mkdir()
    with pytest.raises(SPYLError, match="no recordings.tar.gz in"):
        fsdd.load(str(tmp_path))
    (tmp_path / "fsdd" / "recordings.tar.gz").write_bytes(b"\x1f\x8b not really")
    with pytest.raises(SPYLError, match="not a readable tar.gz archive"):
        fsdd.load(str(tmp_path))
    with tarfile.open(tmp_path / "fsdd" / "recordings.tar.gz", "w:gz") as tf:     # one recording, not FSDD
        data = wav_bytes((tone(440) * 32767).astype(np.int16), 8000)
        info = tarfile.TarInfo("recordings/0_george_0.wav")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    with pytest.raises(SPYLError, match="differ from FSDD v1.0.10"):
        fsdd.load(str(tmp_path))


@needs_data
def test_train_and_experiments_end_to_end(tmp_path):
    import train
    weights = tmp_path / "w"
    weights.mkdir()
    model = tmp_path / "fsdd_200ms.pth"
    # one FHVAE model (a method whose s is built unlike SPYL's) under two rows
    train.main(["--dataset", "fsdd_200ms", "--data-root", SHARED, "--epochs", "1", "--warmup-epochs", "1", "--hidden",
                "32", "--g-dim", "16", "--run-dir", str(tmp_path / "run"), "--out", str(model), "--method", "fhvae"])
    for row in ("spyl", "fhvae"):
        for seed in (0, 1, 2):
            shutil.copy(model, weights / f"fsdd_200ms-{row}-{seed}.pth")
    # a 640 ms model: not scored unless --units asks
    shutil.copy(model, weights / "fsdd-spyl-0.pth")
    out = tmp_path / "audio.json"
    p = subprocess.run([sys.executable, "audio_experiments.py", "--data-root", SHARED, "--weights-dir", str(weights),
                        "--fig-dir", str(tmp_path / "fig"), "--out-json", str(out), "--methods", "spyl,fhvae"],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())["fsdd"]
    controls = {"raw_mean_std": "static_eer", "raw_mean": "static_eer", "lda_raw": "static_eer",
                "raw_delta": "dynamic_eer", "random": "dynamic_eer"}
    assert set(res) == {"spyl", "fhvae", *controls}                      # the shipped unit's rows of those methods only
    for name, figure in controls.items():                                          # the same for any model
        low, high = res[name][figure]["ci"]
        assert set(res[name]) == {figure} and 0 <= low <= res[name][figure]["mean"] <= high <= 1
    assert abs(res["random"]["dynamic_eer"]["mean"] - 0.5) < 0.05                    # no speaker in it
    assert res["raw_mean_std"]["static_eer"]["mean"] < 0.3
    assert res["lda_raw"]["static_eer"]["mean"] < res["raw_mean_std"]["static_eer"]["mean"]
    for row in (res[r] for r in res if r not in controls):
        assert set(row) == {"static_eer", "dynamic_eer", "digit_acc_from_d", "digit_acc_from_s", "speaker_acc_from_s",
                            "speaker_acc_from_d"}
        assert all(0 <= v["mean"] <= 1 for v in row.values())
        # one model thrice: the EER has no seed
        assert row["static_eer"]["std"] < 1e-12 and row["dynamic_eer"]["std"] < 1e-12
        assert all(v["ci"][0] <= v["mean"] <= v["ci"][1] for v in (row["static_eer"], row["dynamic_eer"]))
    printed = {line.split()[0]: line for line in p.stdout.splitlines() if line.strip()}
    for name, row in res.items():                                                  # every computed row, as computed
        for figure in ("static_eer", "dynamic_eer"):
            if figure in row:
                assert f"{100 * row[figure]['mean']:.2f} ± {100 * row[figure]['std']:.2f}" in printed[name], (name,
                                                                                                              figure)
    assert "3.41" in p.stdout and "33.22" in p.stdout                                 # the TIMIT anchors beside ours
    for name in ("A.wav", "B.wav", "A_voice_B_digit.wav", "B_voice_A_digit.wav"):
        rate, x = wavfile.read(tmp_path / "fig" / "audio" / name)
        assert rate == 8000 and x.dtype == np.int16 and len(x) > 1600 and np.abs(x).max() > 1000
    assert (tmp_path / "fig" / "audio_swap.png").stat().st_size > 0


def test_missing_weights_get_one_line(tmp_path):
    p = subprocess.run([sys.executable, "audio_experiments.py", "--data-root", SHARED, "--weights-dir", str(tmp_path)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "fsdd_200ms-spyl-0.pth" in p.stderr
    assert "audio_experiments.py --train`" in p.stderr and "Traceback" not in p.stderr
    for method in METHODS:
        (tmp_path / f"fsdd_200ms-{method}-0.pth").write_bytes(b"")
    p = subprocess.run([sys.executable, "audio_experiments.py", "--data-root", SHARED, "--weights-dir", str(tmp_path),
                        "--units", "fsdd_200ms,fsdd"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 2 and "fsdd-spyl-0.pth" in p.stderr
    assert "--train --units fsdd_200ms,fsdd`" in p.stderr and "Traceback" not in p.stderr


def test_units_pick_the_rows_and_bad_units_get_one_line():
    import audio_experiments as ae
    assert ae.rows_of(ae.parse_units("fsdd_200ms")) == {method: "fsdd_200ms" for method in METHODS}
    assert set(ae.rows_of(ae.parse_units(" fsdd , fsdd_200ms,fsdd"), ae.parse_methods("spyl,dsvae"))) == {
        "spyl", "dsvae", "spyl_640ms", "dsvae_640ms"}
    assert ae.rows_of(("fsdd",), ("dbse",)) == {}                         # the 640 ms rows are SPYL's and DSVAE's
    with pytest.raises(SPYLError, match="--methods 'vae'.*spyl, dsvae"):
        ae.parse_methods("vae")  # methods.parse_methods, as the script imports it
    assert ae.weights_path("w", "spyl_640ms", 2) == os.path.join("w", "fsdd-spyl-2.pth")
    assert ae.weights_path("w", "dsvae", 0) == os.path.join("w", "fsdd_200ms-dsvae-0.pth")
    for bad in ("", "fsdd_100ms", "fsdd,timit"):
        with pytest.raises(SPYLError, match="give one or more of fsdd, fsdd_200ms"):
            ae.parse_units(bad)


@needs_data
def test_search_trains_in_parallel_and_picks_up_where_it_stopped(tmp_path, monkeypatch, capsys):
    import audio_experiments
    tiny = ["--epochs", "1", "--warmup-epochs", "1", "--hidden", "16", "--g-dim", "8", "--s-dim", "8"]
    monkeypatch.setattr(audio_experiments, "SEARCH", {"a": ("fsdd_200ms", tiny), "b": ("fsdd_200ms",
                                                                                       tiny + ["--dsvae"])})
    out = audio_experiments.search(SHARED, str(tmp_path), 2, str(tmp_path / "search.json"), str(tmp_path / "none"))
    assert set(out) == {"a", "b",
                        *audio_experiments.CONTROLS} and out == json.loads((tmp_path / "search.json").read_text())
    assert all(0 <= out[r][k] <= 1 for r in ("a", "b") for k in ("static_eer", "dynamic_eer"))
    for name, figure in audio_experiments.CONTROLS.items():                  # beside them, on the same utterances
        assert set(out[name]) == {figure} and 0 <= out[name][figure] <= 1
    assert abs(out["random"]["dynamic_eer"] - 0.5) < 0.05
    for name in ("a", "b"):                                  # each child's bars went to its own log
        assert "epoch 1/1" in (tmp_path / "search" / f"{name}.log").read_text()
    from model import SPYL
    assert SPYL.load(str(tmp_path / "search" / "b.pth")).config.method == "dsvae"
    assert SPYL.load(str(tmp_path / "search" / "a.pth")).config.method == "spyl"
    stamp = (tmp_path / "search" / "a.pth").stat().st_mtime_ns
    # the preset's seed-0 model, scored beside
    shutil.copy(tmp_path / "search" / "a.pth", tmp_path / "fsdd_200ms-spyl-0.pth")
    again = audio_experiments.search(SHARED, str(tmp_path), 2, str(tmp_path / "again.json"), str(tmp_path))
    assert {k: again[k] for k in out} == out                                   # nothing retrained
    assert again["the preset (spyl, fsdd_200ms-spyl-0.pth)"]["static_eer"] == out["a"]["static_eer"]
    assert (tmp_path / "search" / "a.pth").stat().st_mtime_ns == stamp
    assert "a " in capsys.readouterr().out


@needs_data
def test_an_interrupted_training_job_resumes_from_its_checkpoint(tmp_path):
    from jobs import train_model
    flags = ["--hidden", "16", "--g-dim", "8", "--s-dim", "8", "--warmup-epochs", "1"]
    run, out = str(tmp_path / "run"), str(tmp_path / "m.pth")
    train_model("fsdd", out, run, SHARED, seed=0, flags=flags + ["--epochs", "1"])
    os.remove(out)                                          # as if stopped after the checkpoint
    with pytest.raises(SPYLError, match="already holds a run"):
        train_model("fsdd", out, run, SHARED, seed=0, flags=flags + ["--epochs", "2"])
    train_model("fsdd", out, run, SHARED, seed=0, flags=flags + ["--epochs", "2"], resume=True)
    import torch
    assert torch.load(os.path.join(run, "checkpoint.pt"), weights_only=False)["epoch"] == 2 and os.path.isfile(out)


@needs_data
def test_a_training_job_gives_the_same_floats_each_time(tmp_path):
    import torch
    import audio_experiments as ae
    from model import SPYL
    tiny = ["--epochs", "1", "--warmup-epochs", "0", "--hidden", "16", "--g-dim", "8", "--s-dim", "8"]

    def job(name, seed):                                  # a --train job, then the weights it wrote
        path = str(tmp_path / f"{name}.pth")
        ae._train_one(("fsdd_200ms", path, str(tmp_path / name), SHARED, "spyl", seed, tiny), True)
        return SPYL.load(path).state_dict()

    threads = torch.get_num_threads()
    try:
        # each job is a process of its own on one thread (jobs.py); another seed gives other floats
        # (test_reliability), so two jobs of one seed are the check
        first, again = job("first", 0), job("again", 0)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(first[k], again[k]) for k in first)                    # the same floats, job after job


def test_train_flags_reach_every_training_job(tmp_path, monkeypatch):
    import audio_experiments as ae
    seen = []
    monkeypatch.setattr(ae, "train_all", lambda jobs, workers: seen.extend(jobs))
    ae.retrain("root", str(tmp_path / "w"), str(tmp_path / "r"), 1, flags=["--epochs", "120", "--warmup-epochs", "40"])
    assert len(seen) == len(METHODS) * len(ae.SEEDS) and all(job[-1] == ["--epochs", "120", "--warmup-epochs",
                                                              "40"] for job in seen)

    class Asked(Exception):
        pass

    def retrain(*args):
        raise Asked(args)
    monkeypatch.setattr(ae, "retrain", retrain)
    with pytest.raises(Asked) as asked:
        ae.main(["--train", "--train-flags", "--epochs 120 --warmup-epochs 40", "--weights-dir", str(tmp_path / "w")])
    assert asked.value.args[0][-1] == ["--epochs", "120", "--warmup-epochs", "40"]
