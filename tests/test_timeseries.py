"""Time series: the loaders against ../shared/timeseries (splits, shapes, normalisation, missing
values), the probes on synthetic data with a known answer, bad input, the scripts end to end."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import torch
import pytest

from conftest import ROOT
from datasets import airquality, etth1, physionet
from datasets.timeseries import TimeSeriesData, make_splits, to_windows, zscore_stats
from probes import classify, classify_sequence, regress_steps
from utils import SPYLError
import published_protocol as published
import timeseries_experiments as E
from scores import score, summarise

SHARED = os.path.join(ROOT, "..", "shared", "timeseries")
needs_data = pytest.mark.skipif(not os.path.isdir(SHARED), reason="../shared/timeseries not present")


@pytest.fixture(scope="module")
def etth():
    return etth1.load(SHARED)


@pytest.fixture(scope="module")
def air():
    return airquality.load(SHARED)


@pytest.fixture(scope="module")
def physio():
    return physionet.load(SHARED)


@needs_data
def test_etth1_months_years_and_shapes(etth):
    assert [len(etth[k]) for k in ("train", "valid", "test")] == [14, 3, 6]   # 17 whole months of 2017-18: 85/15
    assert etth["train"].x.shape[1:] == (28, 24 * 6) and etth["test"].x.dtype == np.float32
    assert set(etth["train"].labels["year"]) | set(etth["valid"].labels["year"]) <= {2017, 2018}
    assert set(etth["test"].labels["year"]) == {2016} and sorted(etth["test"].labels["month"]) == list(range(6, 12))
    ot = etth["test"].labels["ot"]
    assert ot.shape == (6, 28) and 5 < ot.mean() < 45                       # degrees, raw: not normalised


@needs_data
def test_air_quality_station_months_and_test_year(air):
    assert [len(air[k]) for k in ("train", "valid", "test")] == [367, 65, 144]  # 36 and 12 months x 12 stations
    assert air["train"].x.shape[1:] == (28, 24 * 10)
    assert 2016 not in set(air["train"].labels["year"]) | set(air["valid"].labels["year"])
    assert set(air["test"].labels["year"]) == {2016} and np.bincount(air["test"].labels["month"]).tolist() == [12] * 12
    assert 0 < np.isnan(air["train"].x).mean() < 0.05                      # the data's own NA values, kept as missing


@needs_data
def test_physionet_split_padding_and_labels(physio):
    tr, te = physio["train"], physio["test"]
    assert tr.x.shape[1:] == (20, 4 * 10) and len(te) == int(0.2 * (len(tr) + len(physio["valid"]) + len(te)))
    # the first 20% by RecordID are the test set
    assert te.labels["record"].max() < tr.labels["record"].min()
    assert set(np.unique(tr.labels["icu"])) == {0, 1, 2, 3} and set(np.unique(tr.labels["death"])) == {0, 1}
    assert 40 <= tr.labels["hours"].min() and tr.labels["hours"].max() <= 49   # 48 h stays, at least 40 hourly bins
    hours = tr.x[0].reshape(80, 10)
    assert np.isnan(hours[tr.labels["hours"][0]:]).all()                      # the padding is missing, not zero
    assert np.isfinite(hours[:tr.labels["hours"][0]]).any()


@needs_data
@pytest.mark.parametrize("name", ["etth", "air", "physio"])
def test_normalisation_uses_training_statistics_only(name, request):
    splits = request.getfixturevalue(name)
    tr = splits["train"].x
    raw = tr.reshape(len(tr), -1, len(splits["mean"])) * splits["std"] + splits["mean"]   # back to raw units
    mean, std = zscore_stats(raw)
    assert np.allclose(mean, splits["mean"], rtol=1e-3, atol=1e-3) and np.allclose(std, splits["std"], rtol=1e-3)
    assert abs(np.nanmean(tr)) < 1e-3 and abs(np.nanstd(tr) - 1) < 1e-2     # the training split is z-scored


def test_the_statistics_ignore_the_validation_and_test_splits():
    rng = np.random.default_rng(0)
    hours = rng.normal(5.0, 2.0, (10, 8, 3)).astype(np.float32)
    labels = {"id": np.arange(10)}
    train, valid, test = np.arange(6), np.array([6, 7]), np.array([8, 9])
    a = make_splits(hours, labels, "x", train, valid, test, window=4)
    hours[6:] = 1000.0 * rng.normal(size=(4, 8, 3))                          # other validation and test values
    b = make_splits(hours, labels, "x", train, valid, test, window=4)
    assert np.array_equal(a["mean"], b["mean"]) and np.array_equal(a["std"], b["std"])
    assert np.array_equal(a["train"].x, b["train"].x)
    mean, std = zscore_stats(hours[train])
    assert np.array_equal(a["mean"], mean) and np.array_equal(a["std"], std)
    # test normalised by training's statistics
    assert np.allclose(b["test"].x, to_windows((hours[test] - mean) / std, 4))


def test_windows_are_hour_major():
    x = np.arange(2 * 8 * 3, dtype=np.float32).reshape(2, 8, 3)               # 2 sequences, 8 hours, 3 features
    w = to_windows(x, 4)
    assert w.shape == (2, 2, 12) and np.array_equal(w[1, 1], x[1, 4:8].reshape(-1))


def test_physionet_cleaning():
    assert np.isnan(physionet.clean("DiasABP", -1)) and np.isnan(physionet.clean("DiasABP", 250))
    assert physionet.clean("Temp", 37.0) == 37.0 and physionet.clean("Temp", 98.6) == pytest.approx(37.0)
    assert np.isnan(physionet.clean("Temp", 12.0)) and physionet.clean("GCS", 0.0) == 0.0
    text = "Time,Parameter,Value\n00:00,RecordID,7\n00:00,ICUType,2\n00:30,Temp,98.6\n00:50,Temp,36.4\n02:40,GCS,15\n"
    record, icu, hourly = physionet.parse_record(text)
    assert (record, icu) == (7, 2) and hourly.shape == (3, 10)               # hours 0, 1, 2 from the first measurement
    assert hourly[0, physionet.FEATURES.index("Temp")] == pytest.approx((37.0 + 36.4) / 2)
    assert np.isnan(hourly[1]).all() and hourly[2, physionet.FEATURES.index("GCS")] == 15
    with pytest.raises(SPYLError, match="not hh:mm,Parameter,number"):
        physionet.parse_record("Time,Parameter,Value\n00:10,HR,fast\n")


def test_probes_find_a_known_answer():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    x = np.eye(4)[y] * 3 + rng.normal(size=(300, 4)) * 0.3                   # separable classes
    acc, probs = classify(x[:200], y[:200], x[200:], y[200:], 4)
    assert acc > 0.95 and probs.shape == (100, 4) and np.allclose(probs.sum(1), 1, atol=1e-5)
    assert classify(rng.normal(size=(200, 4)), y[:200], x[200:], y[200:], 4)[0] < 0.5   # noise: near chance
    s, d = rng.normal(size=(60, 3)), rng.normal(size=(60, 5, 2))
    target = 20 + 5 * d[..., 0] + 3 * s[:, :1]                                 # a value per step from [s, d_t]
    mae = np.abs(regress_steps(s[:40], d[:40], target[:40], s[40:], d[40:], epochs=300) - target[40:]).mean()
    assert mae < 0.3 * np.abs(target[40:] - target[:40].mean()).mean()       # far better than the mean
    label = (d[:, :, 1].mean(1) > 0).astype(np.float32)                       # death, say, written in d
    p = classify_sequence(s[:40], d[:40], np.full(40, 4), label[:40], s[40:], d[40:], np.full(20, 4), epochs=80)
    from sklearn.metrics import roc_auc_score
    assert roc_auc_score(label[40:], p) > 0.9
    with pytest.raises(SPYLError, match="must be as many"):
        classify(x[:10], y[:9], x, y, 4)


def test_missing_file_and_data_root_get_one_line(tmp_path):
    with pytest.raises(SPYLError, match="data root .* does not exist"):
        etth1.load(str(tmp_path / "nowhere"))
    with pytest.raises(SPYLError, match="ETTh1: .*ETTh1.csv is missing"):
        etth1.load(str(tmp_path))
    (tmp_path / "physionet2012").mkdir()
    with pytest.raises(SPYLError, match="PhysioNet: .*Outcomes-a.txt is missing"):
        physionet.load(str(tmp_path))


@needs_data
def test_damaged_file_and_wrong_columns_get_one_line(tmp_path):
    (tmp_path / "etth1").mkdir()
    shutil.copy(os.path.join(SHARED, "etth1", "ETTh1.csv"), tmp_path / "etth1" / "ETTh1.csv")
    with open(tmp_path / "etth1" / "ETTh1.csv", "r+b") as f:                  # one byte changed
        f.seek(1000)
        f.write(b"#")
    with pytest.raises(SPYLError, match="damaged or a different file"):
        etth1.load(str(tmp_path))
    (tmp_path / "wrong.csv").write_text("date,HUFL,OT\n2016-07-01 00:00:00,1,2\n")
    with pytest.raises(SPYLError, match="expected \\['date', 'HUFL'"):
        etth1.read_csv(tmp_path / "wrong.csv")
    (tmp_path / "bad.csv").write_text(",".join(airquality.COLUMNS) + "\n1,2013,3,1,0,x" + ",1" * 12 + "\n")
    with pytest.raises(SPYLError, match="not numbers or NA"):
        airquality.read_csv(tmp_path / "bad.csv")
    (tmp_path / "physionet2012").mkdir()
    shutil.copy(os.path.join(SHARED, "physionet2012", "Outcomes-a.txt"), tmp_path / "physionet2012")
    (tmp_path / "physionet2012" / "set-a.tar.gz").write_bytes(b"not an archive")
    with pytest.raises(SPYLError, match="not a readable tar.gz archive"):
        physionet.load(str(tmp_path))


@needs_data
def test_train_and_experiments_end_to_end(tmp_path):
    import train
    weights = tmp_path / "w"
    for row in ("spyl", "dbse"):                              # SPYL and a compared method (methods/)
        train.main(["--dataset", "etth1", "--data-root", SHARED, "--epochs", "3", "--warmup-epochs", "1",
                    "--run-dir", str(tmp_path / row), "--out", str(weights / f"etth1-{row}.pth"), "--method", row])
    log = [json.loads(x) for x in (tmp_path / "spyl" / "log.jsonl").read_text().splitlines()]
    assert len(log) == 3 and "nce_s" in log[-1]["train"] and (tmp_path / "spyl" / "recon.png").stat().st_size > 0
    out = tmp_path / "ts.json"
    p = subprocess.run([sys.executable, "timeseries_experiments.py", "--data-root", SHARED, "--dataset", "etth1",
                        "--weights-dir", str(weights), "--fig-dir", str(tmp_path / "fig"), "--out-json", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    res = json.loads(out.read_text())
    assert set(res) == {"correct", "published"} and all(set(res[pr]) == {"etth1"} for pr in res)
    for pr in res:
        rows = res[pr]["etth1"]
        assert set(rows) == {"spyl", "dbse", "rf", "rf_window", "linear", "constant"}  # the methods with a model
        for r in rows.values():
            v = r["mae"]
            assert 0 < v["ci"][0] <= v["mean"] <= v["ci"][1] < 40 and v["std"] >= 0
    const = res["correct"]["etth1"]["constant"]["mae"]["mean"]
    # the training mean, 11.85
    assert const == pytest.approx(res["published"]["etth1"]["constant"]["mae"]["mean"]) and 11 < const < 13
    assert "protocol: correct" in p.stdout and "protocol: published" in p.stdout
    for pr in res:                                                            # every computed row printed as computed
        block = p.stdout.split(f"protocol: {pr}")[1].split("protocol: ")[0]
        printed = {line.split()[0]: line for line in block.splitlines() if line.strip()}
        for row, figures in res[pr]["etth1"].items():
            assert E._cell("mae", figures["mae"]) in printed[row], (pr, row)
    assert "12.220" in p.stdout and "10.190" in p.stdout                      # the published anchors beside ours
    for f in ("timeseries_recon.png", "timeseries_static.png"):
        assert (tmp_path / "fig" / f).stat().st_size > 0


def test_experiments_refuse_an_unknown_set():
    p = subprocess.run([sys.executable, "timeseries_experiments.py", "--dataset", "ett"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "argument --dataset: must be one of etth1, airquality, physionet, got 'ett'" in p.stderr


def _codes(rng, n, steps=5):
    """Codes with a per-step target written in d and a tiny posterior spread."""
    s, d = rng.normal(size=(n, 3)), rng.normal(size=(n, steps, 2))
    return published.Codes(s, np.full_like(s, 1e-3), d, np.full_like(d, 1e-3)), 20 + 5 * d[..., 0]


def test_published_label_mismatch_scores_at_constant_level():
    rng = np.random.default_rng(0)
    (train, y_train), (test, y_test) = _codes(rng, 40), _codes(rng, 20)
    constant = np.abs(y_test - y_train.mean()).mean()
    right = np.abs(regress_steps(train.s_mean, train.d_mean, y_train, test.s_mean, test.d_mean) - y_test).mean()
    shuffled = np.abs(published.regress_steps(train, y_train, test) - y_test).mean()
    assert right < 0.3 * constant                    # aligned labels: the answer is found
    assert shuffled > 0.8 * constant                 # labels paired with other inputs: the mean label at best


def _window_set(rng, n, steps=28, dim=6):
    """ETTh1-shaped sequences whose window target is a linear function of that window's inputs."""
    x = rng.normal(size=(n, steps, dim)).astype(np.float32)
    return TimeSeriesData(x, {"ot": 10 + 4 * x[..., 0] - 2 * x[..., 3]}, "etth1")


def test_published_rotation_misaligns_inputs_and_labels():
    rng = np.random.default_rng(1)
    splits = {"train": _window_set(rng, 30), "valid": _window_set(rng, 5), "test": _window_set(rng, 10)}
    y = splits["test"].labels["ot"]
    constant = score("mae", E.baseline_predictions("etth1", "constant", splits, 0)["mae"], y)
    assert constant == pytest.approx(np.abs(y - splits["train"].labels["ot"].mean()).mean())
    right = score("mae", E.baseline_predictions("etth1", "linear", splits, 0)["mae"], y)
    turned = E.prepare("etth1", splits, "published", None)
    assert np.array_equal(turned["test"].x[:, 0],
                          splits["test"].x[:, 14]) and turned["test"].labels is splits["test"].labels
    rotated = score("mae", E.baseline_predictions("etth1", "linear", turned, 0)["mae"], y)
    assert right < 0.1 * constant and rotated > 0.9 * constant


def test_majority_and_constant_rows_on_constructed_labels():
    rng = np.random.default_rng(2)

    def split(n, death_rate):
        x = rng.normal(size=(n, 20, 40)).astype(np.float32)
        labels = {"death": (rng.random(n) < death_rate).astype(int), "icu": rng.choice(4, n, p=[0.1, 0.2, 0.6, 0.1]),
                  "hours": np.full(n, 48)}
        return TimeSeriesData(x, labels, "physionet")
    splits = {"train": split(300, 0.2), "test": split(200, 0.3)}
    p = E.baseline_predictions("physionet", "constant", splits, 0)
    te = splits["test"].labels
    assert np.all(p["auprc"] == splits["train"].labels["death"].mean()) and np.all(p["icu_acc"] == 2)
    assert score("auroc", p["auroc"], te["death"]) == 0.5 and score("auprc", p["auprc"],
                                                                    te["death"]) == pytest.approx(te["death"].mean())
    assert summarise("icu_acc", [p["icu_acc"]], te["icu"])["mean"] == pytest.approx((te["icu"] == 2).mean())
    assert E.row_name("physionet", "constant") == "majority" and E.row_name("etth1", "constant") == "constant"


def test_published_binning_drops_the_first_minute_and_the_last_partial_hour():
    text = ("Time,Parameter,Value\n00:00,RecordID,7\n00:00,ICUType,2\n00:10,GCS,9\n00:40,GCS,11\n01:20,GCS,13\n"
            "02:40,GCS,15\n02:50,HR,80\n")                                    # first measurement 00:10, last 02:50
    ours = physionet.parse_record(text)[2][:, physionet.FEATURES.index("GCS")]
    theirs = physionet.parse_record(text, binning="published")[2][:, physionet.FEATURES.index("GCS")]
    assert ours.tolist() == [10, 13, 15]             # [first + 60 b, first + 60 (b + 1)) up to the last measurement
    # (first, first + 60], (first + 60, first + 120]: 00:10 and 02:40 dropped
    assert theirs.tolist() == [11, 13]
    with pytest.raises(SPYLError, match="binning must be"):
        physionet.parse_record(text, binning="pandas")


def test_the_mortality_read_out_step_of_each_protocol():
    # the last window with the stay's own hours
    assert E.last_step([48, 45, 41], 4, "correct").tolist() == [11, 11, 10]
    assert E.last_step([48, 45, 41], 4, "published").tolist() == [11, 10, 9]  # floor: a partial last window is dropped


@needs_data
def test_training_validates_on_the_validation_split(tmp_path, monkeypatch):
    import train
    seen = []
    original = train.validate
    monkeypatch.setattr(train, "validate", lambda model, val_x, *a: seen.append(val_x) or original(model, val_x, *a))
    train.main(["--dataset", "etth1", "--data-root", SHARED, "--epochs", "1", "--warmup-epochs", "1", "--run-dir",
                str(tmp_path / "r")])
    splits = etth1.load(SHARED)
    assert len(seen) == 1 and np.array_equal(seen[0].numpy(), splits["valid"].x, equal_nan=True)
    months = [set(zip(splits[k].labels["year"], splits[k].labels["month"])) for k in ("train", "valid", "test")]
    assert not (months[0] & months[1]) and not (months[0] & months[2]) and not (months[1] & months[2])


def test_probes_give_the_same_figures_with_one_and_two_threads():
    import torch
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(400, 64)), rng.integers(0, 6, 400)
    s, d, target = rng.normal(size=(30, 3)), rng.normal(size=(30, 5, 2)), rng.normal(size=(30, 5))
    before = torch.get_num_threads()
    out = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            out.append((classify(x[:300], y[:300], x[300:], y[300:], 6, hidden=64)[1],
                        regress_steps(s[:20], d[:20], target[:20], s[20:], d[20:], epochs=20)))
    finally:
        torch.set_num_threads(before)
    assert np.array_equal(out[0][0], out[1][0]) and np.array_equal(out[0][1], out[1][1])
    assert torch.get_num_threads() == before                                   # the probe gives the threads back


def test_markdown_tables_from_a_results_file(tmp_path):
    cell = {"mean": 0.5, "std": 0.01, "ci": [0.4, 0.6]}
    results = {"correct": {"physionet": {"spyl": {"auprc": cell, "auroc": cell, "icu_acc": cell},
                                         "majority": {"auprc": cell, "auroc": cell, "icu_acc": cell}}}}
    text = E.markdown_tables(results)
    # majority shown as the constant row
    assert "| **spyl** | 0.500 ± 0.010<br>[0.400,0.600] |" in text and "| constant |" in text
    assert "| SPYL (published) | 0.367 | 0.764 | 46.98 |" in text and "ETTh1" not in text
    (tmp_path / "bad.json").write_text("{}}")
    p = subprocess.run([sys.executable, "timeseries_experiments.py", "--markdown", str(tmp_path / "bad.json")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "not a results file" in p.stderr and "Traceback" not in p.stderr


def test_retrain_chooses_each_methods_kl_weight_on_validation_and_keeps_the_other_records(tmp_path, monkeypatch):
    import timeseries_experiments as ts
    from conftest import tiny_config
    from methods import build
    from model import SPYL
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / "selection-etth1.json").write_text(json.dumps({"spyl": {"chosen": {"w_kl": 0.1}}}))
    trained = []

    def fake_train(name, path, run_dir, data_root, method, flags, resume):
        trained.append((method, flags[1], resume))
        build(tiny_config(method=method, frame_net="mlp", x_dim=3, frames=4)).save(path, data=name)
    monkeypatch.setattr(ts, "train_model", fake_train)
    mae = {"0.01": 9.0, "0.1": 7.0, "1.0": 8.0}              # the middle weight scores best on validation
    monkeypatch.setattr(ts, "validation_figures", lambda name, model, splits, device: {"mae": next(
        v for k, v in mae.items() if trained[-1][1] == k)})
    record = ts.retrain("etth1", None, "", str(tmp_path / "w"), str(runs), "cpu", methods=("dbse", "fhvae"))
    assert [(m, kl) for m, kl, _ in trained] == [(m, kl) for m in ("dbse", "fhvae") for kl in ("0.01", "0.1", "1.0")]
    assert all(resume for *_, resume in trained)            # an interrupted candidate goes on from its checkpoint
    saved = json.loads((runs / "selection-etth1.json").read_text())
    assert saved == record and saved["spyl"] == {"chosen": {"w_kl": 0.1}}
    assert saved["dbse"]["chosen"] == saved["fhvae"]["chosen"] == {"w_kl": 0.1}
    shipped = tmp_path / "w" / "etth1-fhvae.pth"
    assert type(SPYL.load(shipped)).__name__ == "FHVAE"
    assert all(v.dtype == torch.float16 for v in torch.load(shipped, weights_only=True)["model"].values()
               if v.is_floating_point())                   # written in half precision


def test_every_shipped_model_is_the_one_its_selection_record_chose():
    # weights/timeseries/NAME-METHOD.pth: the method of its name, trained on NAME with the KL weight
    # weights/runs/timeseries/selection-NAME.json chose on validation, in half precision
    from model import SPYL
    folder = os.path.join(ROOT, "weights", "timeseries")
    shipped = sorted(f for f in os.listdir(folder) if f.endswith(".pth"))
    assert {f.split("-")[0] for f in shipped} == set(E.TIMESERIES)
    records = {}
    for name in E.TIMESERIES:
        with open(os.path.join(ROOT, "weights", "runs", "timeseries", f"selection-{name}.json")) as fh:
            records[name] = json.load(fh)
    for f in shipped:
        name, row = f[:-len(".pth")].split("-")
        chosen = records[name][row]["chosen"]["w_kl"]
        ckpt = torch.load(os.path.join(folder, f), weights_only=True)   # read once, checked raw and as a model
        assert ckpt["data"] == name, f
        assert all(v.dtype == torch.float16 for v in ckpt["model"].values() if v.is_floating_point()), f
        config = SPYL.from_checkpoint(ckpt, f).config
        assert config.method == row and config.w_kl_s == config.w_kl_d == chosen, f
