"""compare.py: the methods' tables printed from small result files."""
import json

import pytest

import compare
from conftest import ROOT  # noqa: F401  (the repository on the path)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def sprites_report(action, is_, skin=0.9, hyx=0.01, leak=0.17):
    judges = {"judge-a.pth": action - 0.01, "judge-b.pth": action + 0.005}     # the lowest and highest single judge
    return {"results": {"action": {"mean": action, "judges": judges}, "skin": {"mean": skin, "judges": judges},
                        "oracle_skin": {"mean": skin, "std": 0.004}, "skin|action_kept": {"mean": leak},
                        "IS": {"mean": is_}, "H(y|x)": {"mean": hyx}}}


@pytest.fixture
def fig(tmp_path):
    for seed, (a, i) in enumerate([(0.99, 8.70), (0.98, 8.72), (0.97, 8.74)]):
        write(tmp_path / "methods" / "sprites" / f"spyl-{seed}.json", sprites_report(a, i))
    for seed, (a, i) in enumerate([(0.99, 8.30), (0.97, 8.32), (0.98, 8.31)]):
        write(tmp_path / "methods" / "sprites" / f"dsvae-{seed}.json", sprites_report(a, i))
    write(tmp_path / "methods" / "sprites" / "dbse-0.json", sprites_report(0.5, 7.0, leak=0.9))   # d holds the skin
    eer = lambda m, s: {"mean": m, "std": s, "ci": [m - 0.02, m + 0.02]}
    write(tmp_path / "audio.json", {"seeds": {"spyl": [0, 1, 2], "fhvae": [0, 1, 2]}, "fsdd": {
        "spyl": {"static_eer": eer(0.15, 0.01), "dynamic_eer": eer(0.30, 0.01)},
        "fhvae": {"static_eer": eer(0.30, 0.01), "dynamic_eer": eer(0.31, 0.01)},
        "raw_mean_std": {"static_eer": eer(0.21, 0.0)}}})
    fig = lambda m, lo, hi: {"mean": m, "std": 0.01, "ci": [lo, hi]}
    series = {"etth1": {"spyl": {"mae": fig(12.0, 10.0, 14.0)}, "dbse": {"mae": fig(20.0, 15.0, 25.0)},
                        "constant": {"mae": fig(11.8, 9.0, 14.0)}},
              "airquality": {"spyl": {"month_acc": fig(0.7, 0.6, 0.8)}, "dbse": {"month_acc": fig(0.65, 0.55, 0.75)}},
              "physionet": {m: {k: fig(0.5, 0.4, 0.6) for k in ("auprc", "auroc", "icu_acc")}
                            for m in ("spyl", "dbse")}}
    series["physionet"]["fhvae"] = series["physionet"]["spyl"]                   # a method run on one set of three
    write(tmp_path / "timeseries.json", {"correct": series})
    return tmp_path


def test_tables_hold_each_method_over_seeds_and_say_what_exceeds_the_spread(fig, capsys):
    compare.main(["--fig-dir", str(fig)])
    out = capsys.readouterr().out
    sprites, speech, series = out.split("### ")[1:]
    rows = lambda text: {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| ")}
    video = rows(sprites.split("Every run")[0])
    assert "98.00 ± 1.00" in video["SPYL"] and "8.720 ± 0.020" in video["SPYL"]   # mean ± std over the 3 seeds
    assert "8.310 ± 0.010" in video["DSVAE"] and "50.00 |" in video["DBSE"]        # one seed: no ±
    assert [c.strip() for c in video["DBSE"].split("|")[2:7]] == ["50.00", "90.00", "90.00", "7.000", "0.010"]
    assert video["chance"].split("|")[3:6] == [" 16.67 ", " 16.67 ", " 1.000 "]     # skin (oracle), skin (d kept), IS
    assert "S3VAE" not in video and "C-DSVAE (published)" in video                 # no results, no row
    line = next(x for x in sprites.splitlines() if x.startswith("Beyond the seed spread"))
    beyond, rest = line.split("Within it:")
    within, unjudged = rest.split("Not judged")
    assert "DSVAE IS (SPYL ahead)" in beyond and "DSVAE action" in within and "DSVAE action" not in beyond
    assert "DBSE" not in beyond + within                                # one seed: neither beyond nor within
    assert "DBSE action, skin (oracle), skin (d kept), IS, H(y\\|x) (one seed of DBSE)" in unjudged   # one item
    runs = [row.split(" | ") for row in sprites.split("Every run")[1].splitlines() if row.startswith("| ")][2:]
    assert [r[:2] for r in runs] == [["| SPYL", "0"], ["| SPYL", "1"], ["| SPYL", "2"], ["| DSVAE", "0"],
                                     ["| DSVAE", "1"], ["| DSVAE", "2"], ["| DBSE", "0"]]   # one row per trained model
    assert runs[1][2] == "98.00 (97.00-98.50)" and runs[1][4] == "90.00 ± 0.40"     # the judges' range; repeats' ±
    assert runs[-1][5] == "90.00"                                                    # DBSE's d holds the skin
    assert "15.00 ± 1.00 [13.0, 17.0]" in rows(speech)["SPYL"]
    beyond, within = speech.split("Within it:")
    assert "FHVAE static EER (SPYL ahead)" in beyond and "FHVAE dynamic EER" in within
    assert "`raw_mean_std`" in speech
    assert "12.000 ± 0.010 [10.00, 14.00]" in rows(series)["SPYL"] and "S3VAE" not in rows(series)
    assert [c.strip() for c in rows(series)["FHVAE"].split("|")[2:7]] == ["-", "-", "0.500 ± 0.010 [0.40, 0.60]",
                                                                         "0.500 ± 0.010 [0.40, 0.60]",
                                                                         "50.00 ± 1.00 [40.0, 60.0]"]
    assert rows(series)["DBSE (published; published protocol)"].split("|")[2].strip() == "11.210"
    apart, overlap = series.split("Overlapping:")
    assert "DBSE ETTh1 MAE (SPYL ahead)" in apart and "DBSE air quality month" in overlap   # MAE: lower is better


def test_headline_has_a_row_per_method_and_a_dash_where_not_run(fig, capsys):
    compare.main(["--fig-dir", str(fig), "--headline"])
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 + 6 + 1
    assert lines[-1].split(" | ")[1:] == ["chance 11.11", "chance 16.67", "-", "input statistics 21.00", "-",
                                          "training mean 11.800", "- |"]         # the controls the fixture holds
    spyl = next(line for line in lines if "**SPYL**" in line)
    assert spyl.split(" | ")[1:4] == ["98.00 ± 1.00", "90.00", "8.720 ± 0.020"]   # action, skin (oracle), IS
    assert "15.00 ± 1.00" in spyl and spyl.rstrip(" |").endswith("| 12.000 | 0.500")
    fhvae = next(line for line in lines if line.startswith("| FHVAE"))
    assert fhvae.rstrip(" |").endswith("| - | 0.500")                           # in one set's results, not the other
    assert next(line for line in lines if line.startswith("| C-DSVAE")).count(" - ") == 7


def test_sprites_section_shows_the_static_kept_figure_of_each_method_that_has_one(fig, capsys):
    compare.main(["--fig-dir", str(fig)])
    assert "static-kept" not in capsys.readouterr().out                        # none drawn yet: no paragraph
    for m in ("dbse", "spyl"):
        (fig / "methods" / "sprites" / f"{m}.png").write_bytes(b"png")
    compare.main(["--fig-dir", str(fig)])
    sprites = capsys.readouterr().out.split("### ")[1]
    images = [line for line in sprites.splitlines() if line.startswith("![")]
    assert [i.split(":")[0] for i in images] == ["![SPYL", "![DBSE"]              # in the methods' order
    assert images[0].endswith("/methods/sprites/spyl.png)") and images[0].split("(")[1].startswith("..")


def test_a_report_without_a_figure_leaves_its_cell_empty(fig, capsys):
    old = sprites_report(0.96, 8.5)
    del old["results"]["skin|action_kept"]                                    # scored before that figure existed
    write(fig / "methods" / "sprites" / "s3vae-0.json", old)
    compare.main(["--fig-dir", str(fig)])
    s3vae = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| S3VAE |"))
    assert [c.strip() for c in s3vae.split("|")[2:7]] == ["96.00", "90.00", "", "8.500", "0.010"]


def test_the_action_in_its_two_parts_has_a_row_per_run_that_has_it(fig, capsys):
    compare.main(["--fig-dir", str(fig)])
    assert "two parts" not in capsys.readouterr().out                         # no report has them: no table
    report = sprites_report(0.6, 7.5)
    parts = {"motion": 0.99, "direction": 0.64, "motion|static_kept": 0.34, "direction|static_kept": 0.93}
    report["results"].update({k: {"mean": v, "judges": {"judge-a.pth": v - 0.01, "judge-b.pth": v + 0.01}}
                              for k, v in parts.items()})
    write(fig / "methods" / "sprites" / "dbse-0.json", report)
    compare.main(["--fig-dir", str(fig)])
    part = capsys.readouterr().out.split("two parts")[1].split("### ")[0]
    rows = [line for line in part.splitlines() if line.startswith("| ")][2:]
    assert rows == ["| DBSE | 0 | 99.00 (98.00-100.00) | 64.00 (63.00-65.00) | 34.00 (33.00-35.00) | "
                    "93.00 (92.00-94.00) |", "| chance |  | 33.33 | 33.33 | 33.33 | 33.33 |"]
    assert "Scored before these figures existed: SPYL 0, SPYL 1, SPYL 2, DSVAE 0, DSVAE 1, DSVAE 2." in part


def test_an_empty_folder_says_what_is_missing(tmp_path, capsys):
    compare.main(["--fig-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert "No method has a Sprites report" in out and "No `audio.json` yet." in out


def test_the_docs_and_readme_hold_the_tables_the_shipped_results_give():
    for path, marker in compare.BLOCKS:
        with open(path) as f:
            text = f.read()
        table = compare.markdown("fig") if marker == "tables" else compare.headline("fig")
        assert compare.replace_block(text, marker, table) == text, f"run `python compare.py --update` ({path})"


def test_replace_block_sets_only_the_block_and_refuses_a_file_without_one():
    text = "a\n<!-- compare.py headline -->\nold\n<!-- /compare.py -->\nb\n"
    assert compare.replace_block(text, "headline", "new") == text.replace("old", "new")
    with pytest.raises(Exception, match="no '<!-- compare.py tables -->'"):
        compare.replace_block(text, "tables", "new")
