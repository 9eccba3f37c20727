"""The methods side by side: one markdown table per modality, built from the result files the
experiment scripts write, each cell the mean ± std over seeds, beside the controls and the
published rows; under each table, which differences from SPYL exceed the seed spread.

Where the result files live (under a figures folder, fig/ by default):
- Sprites: methods/sprites/METHOD-SEED.json, one swaps_experiments.py report per trained model,
  methods/sprites/METHOD.png, a method's static-kept samples (from its first run), and
  swaps_real.json (real sequences: the ceiling);
- speech: audio.json (audio_experiments.py; its rows are already over seeds);
- time series: timeseries.json (timeseries_experiments.py, the correct protocol).
A method with no result file has no row; nothing here trains or scores anything.
"""
import glob
import json
import os

import numpy as np

from methods import METHODS, TITLES

# Published figures, as SPYL's paper reprints them (Table 1, Sprites; Table 2, TIMIT) and DBSE's
# tables (time series: SPYL, DBSE, DiffSDA, the field's best, and the random forest those tables
# carry). Recalled, not read from a stored copy of the papers: direction only.
PUBLISHED_SPRITES = {  # action accuracy (%), IS, H(y|x)
    "DSVAE": (90.73, 8.384, 0.072), "S3VAE": (99.49, 8.637, 0.041), "C-DSVAE": (99.99, 8.871, 0.014),
    "SPYL": (100.0, 8.942, 0.006)}
PUBLISHED_TIMIT = {  # static EER, dynamic EER (%)
    "SPYL": (3.41, 33.22), "C-DSVAE": (4.03, 31.81), "S3VAE": (5.02, 25.51), "FHVAE": (5.06, 22.77),
    "DSVAE": (5.64, 19.20)}
PUBLISHED_SERIES = {  # DBSE's tables, under the published protocol: {row: {(set, figure): value}}
    "SPYL": {("etth1", "mae"): 12.22, ("physionet", "auprc"): 0.367, ("physionet", "auroc"): 0.764,
             ("physionet", "icu_acc"): 0.4698, ("airquality", "month_acc"): 0.5793},
    "DBSE": {("etth1", "mae"): 11.21, ("physionet", "auprc"): 0.473, ("physionet", "auroc"): 0.858,
             ("physionet", "icu_acc"): 0.5687, ("airquality", "month_acc"): 0.6587},
    "DiffSDA": {("etth1", "mae"): 9.89, ("physionet", "auprc"): 0.50, ("physionet", "auroc"): 0.87,
                ("physionet", "icu_acc"): 0.646, ("airquality", "month_acc"): 0.692},
    "RF": {("etth1", "mae"): 10.19, ("physionet", "auprc"): 0.446, ("physionet", "auroc"): 0.802,
           ("physionet", "icu_acc"): 0.62, ("airquality", "month_acc"): 0.6243}}
# A model whose d holds the appearance too reads perfect on action, IS and H(y|x), all read from
# samples that keep d; the oracle's skin (s kept) and the skin of those samples are what show it.
SKIN_D_KEPT = ("the judges' skin of the samples that keep d and draw s anew (those action, IS and H(y\\|x) "
               "read): at chance (16.67) when d holds none of the appearance, so lower is better.")
# The figures of each table: (key in the result file, title, percent?, higher is better?)
SPRITES_FIGURES = [("action", "action", True, True), ("oracle_skin", "skin (oracle)", True, True),
                   ("skin|action_kept", "skin (d kept)", True, False),
                   ("IS", "IS", False, True), ("H(y|x)", "H(y\\|x)", False, False)]
SPRITES_CHANCE = ["11.11", "16.67", "16.67", "1.000", "2.197"]
HEADLINE_SPRITES = [("action", True), ("oracle_skin", True), ("IS", False)]   # (key, percent?)
SPEECH_FIGURES = [("static_eer", "static EER", True, False), ("dynamic_eer", "dynamic EER", True, True)]
SERIES_FIGURES = {"etth1": [("mae", "ETTh1 MAE", False, False)],
                  "airquality": [("month_acc", "air quality month", True, True)],
                  "physionet": [("auprc", "PhysioNet AUPRC", False, True), ("auroc", "AUROC", False, True),
                                ("icu_acc", "ICU type", True, True)]}
SPEECH_CONTROLS = {"raw_mean_std": "each utterance's mean and std of its frames (no learning)",
                   "raw_delta": "frame-to-frame changes (no learning)", "random": "a code with no speaker in it"}
# label: the row names of timeseries.json it reads, the first one a set has
SERIES_CONTROLS = {
    "`constant` / `majority`: the training mean or majority class (no learning)": ("constant", "majority"),
    "`rf`: a random forest on the raw series (no code)": ("rf",)}


def read_json(path):
    """The file's contents, or None where it is absent."""
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        return json.load(f)


def over_seeds(values):
    """{"mean", "std", "n"} of one figure's per-seed values (std 0 for one seed)."""
    v = np.asarray(values, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": len(v)}


def sprites_rows(runs):
    """{method: {figure: over_seeds}} from sprites_runs' reports; a figure is left out of a method's
    row where one of its reports lacks it (reports written before the figure was scored)."""
    rows = {}
    for method in dict.fromkeys(m for m, _, _ in runs):
        reports = [r["results"] for m, _, r in runs if m == method]
        rows[method] = {key: over_seeds([r[key]["mean"] for r in reports])
                        for key, *_ in SPRITES_FIGURES if all(key in r for r in reports)}
    return rows


def sprites_runs(fig_dir):
    """[(method, seed, report)] for every fig_dir/methods/sprites/METHOD-SEED.json, in METHODS order."""
    runs = []
    for method in METHODS:
        for path in sorted(glob.glob(os.path.join(fig_dir, "methods", "sprites", f"{method}-*.json"))):
            runs.append((method, os.path.basename(path)[len(method) + 1:-len(".json")], read_json(path)))
    return runs


def judged(result):
    """'99.58 (99.11-99.85)': the judges' mean accuracy (%) and the lowest and highest single judge."""
    text = cell({"mean": result["mean"]}, True)
    if result.get("judges"):
        text += f" ({100 * min(result['judges'].values()):.2f}-{100 * max(result['judges'].values()):.2f})"
    return text


def sprites_runs_table(runs):
    """One row per trained model of sprites_runs: the judges' spread beside each mean, so the seeds
    and the judges show."""
    body = [[TITLES[m], seed, judged(r["results"]["action"]), judged(r["results"]["skin"]),
             cell(r["results"]["oracle_skin"], True),
             judged(r["results"]["skin|action_kept"]) if "skin|action_kept" in r["results"] else "",
             cell(r["results"]["IS"], False), cell(r["results"]["H(y|x)"], False)] for m, seed, r in runs]
    return table(["method", "seed", "action (judges)", "skin (judges)", "skin (oracle)", "skin (d kept, judges)",
                  "IS", "H(y\\|x)"], body)


ACTION_PART_COLUMNS = [("motion", "motion (d kept)"), ("direction", "direction (d kept)"),
                       ("motion|static_kept", "motion (s kept)"), ("direction|static_kept", "direction (s kept)")]


def direction_table(runs):
    """The judged action in its two parts, per run whose report has them: which code holds the facing
    direction, constant over a clip ('' where no report has them)."""
    scored = [(m, seed, r["results"]) for m, seed, r in runs if "direction" in r["results"]]
    if not scored:
        return ""
    body = [[TITLES[m], seed] + [judged(res[k]) for k, _ in ACTION_PART_COLUMNS] for m, seed, res in scored]
    body.append(["chance", ""] + ["33.33"] * len(ACTION_PART_COLUMNS))
    missing = [f"{TITLES[m]} {seed}" for m, seed, r in runs if "direction" not in r["results"]]
    note = f" Scored before these figures existed: {', '.join(missing)}." if missing else ""
    return ("\n\nThe action in its two parts (action = 3 x motion + direction; the facing direction is the same in "
            "every frame of a clip): the samples that keep d should keep both, those that keep s neither (chance)."
            + note + "\n\n" + table(["method", "seed"] + [t for _, t in ACTION_PART_COLUMNS], body))


def cell(v, pct, ci=None):
    """'15.15 ± 0.72 [12.1, 17.8]' (percent) or '8.742 ± 0.010'; no ± where the std is 0 (one seed)."""
    scale, digits = (100, 2) if pct else (1, 3)
    text = f"{scale * v['mean']:.{digits}f}"
    if v.get("std"):
        text += f" ± {scale * v['std']:.{digits}f}"
    if ci:
        text += f" [{scale * ci[0]:.1f}, {scale * ci[1]:.1f}]" if pct else f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def against_spyl(rows, figures, apart):
    """Every other method's figures, split by apart(SPYL's cell, the method's cell): +1 or -1 where
    SPYL's lies above or below the method's beyond the spread, 0 where not, None where there is no
    spread to judge by (one seed). Returns (beyond, within, unjudged): one item per method and
    outcome, its figures in the table's order, such as 'DSVAE IS, H(y|x) (SPYL ahead)'."""
    out = {"beyond": [], "within": [], "unjudged": []}
    for method, row in rows.items():
        groups = {}  # (outcome, note) -> the titles of the figures with that outcome
        for key, title, _, higher in figures if method != "spyl" else ():
            if key not in row or key not in rows["spyl"]:
                continue
            side = apart(rows["spyl"][key], row[key])
            if side is None:
                one = "SPYL" if rows["spyl"][key].get("n", 2) < 2 else TITLES[method]
                outcome, note = "unjudged", f" (one seed of {one})"
            else:
                outcome = "beyond" if side else "within"
                note = f" (SPYL {'ahead' if (side > 0) == higher else 'behind'})" if side else ""
            groups.setdefault((outcome, note), []).append(title)
        for (outcome, note), titles in groups.items():
            out[outcome].append(f"{TITLES[method]} {', '.join(titles)}{note}")
    return out["beyond"], out["within"], out["unjudged"]


def seed_apart(a, b):
    """Apart when the means differ by more than the sum of the two stds over seeds (None: one seed)."""
    if a.get("n", 2) < 2 or b.get("n", 2) < 2:
        return None
    diff = a["mean"] - b["mean"]
    return (1 if diff > 0 else -1) if abs(diff) > a["std"] + b["std"] else 0


def interval_apart(a, b):
    """Apart when the two 95% bootstrap intervals do not overlap."""
    return 1 if a["ci"][0] > b["ci"][1] else -1 if b["ci"][0] > a["ci"][1] else 0


def say(items):
    return "; ".join(items) if items else "none"


def verdict(rows, figures):
    """One line: which figures of which method differ from SPYL's by more than the seed spread
    (the sum of the two stds over seeds), in which direction, and which do not."""
    if "spyl" not in rows:
        return "No SPYL row: nothing to compare with."
    beyond, within, unjudged = against_spyl(rows, figures, seed_apart)
    line = (f"Beyond the seed spread (|SPYL - method| > the sum of their stds over seeds): {say(beyond)}. "
            f"Within it: {say(within)}.")
    return line + (f" Not judged, no spread to judge by: {say(unjudged)}." if unjudged else "")


def table(header, body):
    """A markdown table from a header list and rows of cells."""
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def seeds_note(rows):
    return ", ".join(f"{TITLES[m]} {r[next(iter(r))].get('n', 3)}" for m, r in rows.items())


def sprites_section(fig_dir):
    """The Sprites table (every method with a report, real sequences, chance, published)."""
    runs = sprites_runs(fig_dir)
    rows = sprites_rows(runs)
    if not rows:
        return "### Sprites\n\nNo method has a Sprites report in `fig/methods/sprites/` yet."
    body = [[TITLES[m]] + [cell(r[k], pct) if k in r else "" for k, _, pct, _ in SPRITES_FIGURES]
            for m, r in rows.items()]
    real = (read_json(os.path.join(fig_dir, "swaps_real.json")) or {}).get("results")
    if real:  # nothing is kept or drawn for real sequences: no "d kept" reading
        body.append(["real test sequences (the ceiling)"] + [cell({"mean": real[k]["mean"]}, pct) if k in real else ""
                                                            for k, _, pct, _ in SPRITES_FIGURES])
    body.append(["chance"] + SPRITES_CHANCE)
    body += [[f"{name} (published)", f"{a:.2f}", "", "", f"{i:.3f}", f"{h:.3f}"]
             for name, (a, i, h) in PUBLISHED_SPRITES.items()]
    every = ("Every run: beside the four judges' mean, the lowest and highest single judge; ± is the spread over "
             "the evaluation's repeats, not over seeds.\n\n" + sprites_runs_table(runs) + direction_table(runs))
    return (f"### Sprites\n\nSeeds: {seeds_note(rows)}. Skin (d kept): {SKIN_D_KEPT}\n\n"
            + table(["method"] + [t for _, t, _, _ in SPRITES_FIGURES], body)
            + "\n\n" + verdict(rows, SPRITES_FIGURES) + "\n\n" + every + sprites_figures(fig_dir))


def sprites_figures(fig_dir):
    """Each method's static-kept figure (methods/sprites/METHOD.png) as an image in docs/methods.md,
    or '' where none is drawn yet."""
    docs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "docs")
    shown = [(m, os.path.join(fig_dir, "methods", "sprites", f"{m}.png")) for m in METHODS]
    links = [f"![{TITLES[m]}: static-kept samples]({os.path.relpath(os.path.abspath(p), docs).replace(os.sep, '/')})"
             for m, p in shown if os.path.isfile(p)]
    if not links:
        return ""
    return ("\n\nEach method's static-kept samples of the same three test sequences, from one of its runs (the "
            "first scored with this figure; each label names its seed): appearance kept, motion drawn from the "
            "model's own prior with the same seed; a red frame is one the oracle finds blended, not a real "
            "frame.\n\n" + "\n\n".join(links))


def speech_section(fig_dir):
    """The speech table (FSDD, 200 ms: every method in audio.json, the controls, TIMIT published)."""
    res = read_json(os.path.join(fig_dir, "audio.json"))
    if not res:
        return "### Speech\n\nNo `audio.json` yet."
    seeds = res.get("seeds", {})
    rows = {m: {k: {**res["fsdd"][m][k], "n": len(seeds.get(m, [0, 1, 2]))} for k, *_ in SPEECH_FIGURES}
            for m in METHODS if m in res["fsdd"]}
    body = [[TITLES[m]] + [cell(r[k], True, r[k].get("ci")) for k, *_ in SPEECH_FIGURES]
            + [f"{100 * (r['dynamic_eer']['mean'] - r['static_eer']['mean']):.2f}"] for m, r in rows.items()]
    for name, what in SPEECH_CONTROLS.items():
        if name in res["fsdd"]:
            c = res["fsdd"][name]
            body.append([f"`{name}`: {what}"] + [cell(c[k], True, c[k].get("ci")) if k in c else ""
                                                  for k, *_ in SPEECH_FIGURES] + [""])
    body += [[f"{name}, TIMIT (published)", f"{st:.2f}", f"{dy:.2f}", f"{dy - st:.2f}"]
             for name, (st, dy) in PUBLISHED_TIMIT.items()]
    return (f"### Speech (FSDD, 200 ms segments)\n\nSeeds: {seeds_note(rows)}. Static EER: lower is better; "
            "dynamic EER: higher is better; [95% bootstrap interval over the test utterances].\n\n"
            + table(["method", "static EER", "dynamic EER", "gap"], body) + "\n\n" + verdict(rows, SPEECH_FIGURES))


def series_section(fig_dir):
    """The time-series table (correct protocol: every method in timeseries.json, the controls)."""
    res = read_json(os.path.join(fig_dir, "timeseries.json"))
    if not res:
        return "### Time series\n\nNo `timeseries.json` yet."
    res = res["correct"]
    figures = [(name, key, title, pct, higher) for name, fs in SERIES_FIGURES.items() for key, title, pct, higher in fs]
    # a method trained on some of the sets has a row, '-' on the others
    methods = {m: {(name, key): res[name][m][key] for name, key, *_ in figures if m in res.get(name, {})}
               for m in METHODS}
    methods = {m: row for m, row in methods.items() if row}
    rows = {TITLES[m]: (m,) for m in methods} | SERIES_CONTROLS
    body = []
    for title, keys in rows.items():
        found = [next((res[name][k] for k in keys if k in res.get(name, {})), None) for name, *_ in figures]
        missing = "-" if keys[0] in methods else ""
        body.append([title] + [cell(r[key], pct, r[key].get("ci")) if r else missing
                               for r, (_, key, _, pct, _) in zip(found, figures)])
    body += [[f"{name} (published; published protocol)"] + [cell({"mean": v[(n, k)]}, pct)
                                                             for n, k, _, pct, _ in figures]
             for name, v in PUBLISHED_SERIES.items()]
    return ("### Time series (the correct protocol)\n\nOne trained model per method and set (its KL weight chosen on "
            "validation); ± is the spread of the probe over its runs, [the 95% bootstrap interval over the test set]. "
            "The published rows were measured under the published protocol ([timeseries.md](timeseries.md)).\n\n"
            + table(["method"] + [t for _, _, t, _, _ in figures], body) + "\n\n" + interval_verdict(methods, figures))


def interval_verdict(rows, figures):
    """One line for one model per method (no seed spread): which figures of which method have a 95%
    bootstrap interval that does not overlap SPYL's, in which direction, and which overlap."""
    if "spyl" not in rows:
        return "No SPYL row: nothing to compare with."
    apart, overlap, _ = against_spyl(rows, [((n, k), t, pct, h) for n, k, t, pct, h in figures], interval_apart)
    return (f"One seed per method, so no seed spread; intervals apart from SPYL's: {say(apart)}. "
            f"Overlapping: {say(overlap)}.")


def markdown(fig_dir="fig"):
    """docs/methods.md's results: the three tables, each with its line on the seed spread."""
    return "\n\n".join(f(fig_dir) for f in (sprites_section, speech_section, series_section))


def headline_controls(fig_dir, audio, series):
    """The headline's control row, each cell named: chance (action, skin) and the real sequences (Sprites), the
    input's statistics and a random code (speech), the training mean (time series)."""
    real = (read_json(os.path.join(fig_dir, "swaps_real.json")) or {}).get("results", {})
    named = lambda what, c, pct: f"{what} {cell(c, pct).split(' ±')[0]}" if c else "-"   # its mean, no spread
    return ["chance 11.11", "chance 16.67", named("real sequences", real.get("IS"), False),
            named("input statistics", audio.get("raw_mean_std", {}).get("static_eer"), True),
            named("random code", audio.get("random", {}).get("dynamic_eer"), True),
            named("training mean", series.get("etth1", {}).get("constant", {}).get("mae"), False),
            named("majority class", series.get("physionet", {}).get("majority", {}).get("auprc"), False)]


def headline(fig_dir="fig"):
    """The README's table: one row per method, a figure or two per modality; '-' where not run."""
    sprites = sprites_rows(sprites_runs(fig_dir))
    audio = (read_json(os.path.join(fig_dir, "audio.json")) or {}).get("fsdd", {})
    series = (read_json(os.path.join(fig_dir, "timeseries.json")) or {}).get("correct", {})
    body = []
    for m in METHODS:
        cells = [cell(sprites[m][k], pct) if k in sprites.get(m, {}) else "-" for k, pct in HEADLINE_SPRITES]
        cells += [cell(audio[m][k], True) if m in audio else "-" for k, *_ in SPEECH_FIGURES]
        # one trained model per method and set: its ± would be the probe's, not a seed spread
        cells += [cell({"mean": series[name][m][key]["mean"]}, pct) if m in series.get(name, {}) else "-"
                  for name, key, pct in (("etth1", "mae", False), ("physionet", "auprc", False))]
        body.append([f"**{TITLES[m]}**" if m == "spyl" else TITLES[m]] + cells)
    body.append(["*the control that bounds it*"] + headline_controls(fig_dir, audio, series))
    return table(["method", "Sprites action", "Sprites skin (oracle)", "Sprites IS", "speech static EER",
                  "speech dynamic EER", "ETTh1 MAE", "PhysioNet AUPRC"], body)
