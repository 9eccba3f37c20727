"""The repository's shape: scripts share modules, never each other; the README stays one sitting
long and links every page of docs/, and every link it or a page holds leads somewhere."""
import ast
import os
import re

from conftest import ROOT

README_MAX_LINES = 250


def python_files():
    return sorted(f for f in os.listdir(ROOT) if f.endswith(".py"))


def is_script(name):
    with open(os.path.join(ROOT, name)) as f:
        return 'if __name__ == "__main__":' in f.read()


def imported_modules(name):
    """Top-level names of every module a file imports, anywhere in it (functions included)."""
    with open(os.path.join(ROOT, name)) as f:
        tree = ast.parse(f.read())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_no_script_imports_another_script():
    scripts = {f[:-3] for f in python_files() if is_script(f)}
    assert {"train", "judge", "fit_prior", "swaps_experiments", "audio_experiments", "timeseries_experiments",
            "bench"} <= scripts
    offenders = {f"{s}.py imports {sorted(imported_modules(s + '.py') & (scripts - {s}))}" for s in scripts
                 if imported_modules(s + ".py") & (scripts - {s})}
    assert not offenders, offenders


def links(path):
    """(target, line) of every relative Markdown link of a file, anchors dropped."""
    with open(path) as f:
        text = f.read()
    return [(m.group(1).split("#")[0], text[:m.start()].count("\n") + 1)
            for m in re.finditer(r"\]\(([^)\s]+)\)", text) if not m.group(1).startswith(("http", "#"))]


def test_the_readme_is_short_and_every_docs_page_is_linked_from_it():
    with open(os.path.join(ROOT, "README.md")) as f:
        assert len(f.read().splitlines()) <= README_MAX_LINES
    linked = {os.path.normpath(target) for target, _ in links(os.path.join(ROOT, "README.md"))}
    pages = {os.path.join("docs", p) for p in os.listdir(os.path.join(ROOT, "docs")) if p.endswith(".md")}
    assert not pages - linked, f"pages no README link leads to: {sorted(pages - linked)}"


def test_every_relative_link_leads_to_a_file():
    files = [os.path.join(ROOT, "README.md")] + [os.path.join(ROOT, "docs", p) for p in os.listdir(os.path.join(ROOT,
                                                                                                                "docs"))
                                                 if p.endswith(".md")]
    broken = [f"{os.path.relpath(path, ROOT)}:{line} -> {target}" for path in files for target, line in links(path)
              if target and not os.path.exists(os.path.join(os.path.dirname(path), target))]
    assert not broken, broken


def test_no_line_of_code_is_over_120_characters():
    folders = (ROOT, os.path.join(ROOT, "datasets"), os.path.join(ROOT, "tests"), os.path.join(ROOT, "bench"))
    files = [os.path.join(d, f) for d in folders for f in sorted(os.listdir(d)) if f.endswith(".py")]
    long = [f"{os.path.relpath(path, ROOT)}:{i}" for path in files
            for i, line in enumerate(open(path).read().splitlines(), 1) if len(line) > 120]
    assert not long, long
