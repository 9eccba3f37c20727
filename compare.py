"""Print the comparison of the methods (methods/) from the result files in fig/: the tables of
docs/methods.md, or the README's headline table. It reads, never trains or scores.

    python compare.py                 # docs/methods.md's tables: Sprites, speech, time series
    python compare.py --headline      # the README's one table across methods and modalities
    python compare.py --update        # write both into docs/methods.md and README.md, between their markers
"""
import os

from comparison import headline, markdown
from utils import ArgumentParser, SPYLError, atomic_write, run_main

ROOT = os.path.dirname(os.path.abspath(__file__))
# (file, marker): the block between "<!-- compare.py MARKER -->" and "<!-- /compare.py -->" is the table
BLOCKS = ((os.path.join(ROOT, "docs", "methods.md"), "tables"), (os.path.join(ROOT, "README.md"), "headline"))


def replace_block(text, marker, table):
    """text with the block after '<!-- compare.py MARKER -->' (up to '<!-- /compare.py -->') set to table."""
    start, end = f"<!-- compare.py {marker} -->", "<!-- /compare.py -->"
    if start not in text or end not in text[text.find(start):]:
        raise SPYLError(f"no '{start}' ... '{end}' block to write the table into")
    head, rest = text.split(start, 1)
    return head + start + "\n" + table + "\n" + end + rest.split(end, 1)[1]


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fig-dir", default="fig", help="the folder of the result files (default fig)")
    p.add_argument("--headline", action="store_true", help="the README's table instead of docs/methods.md's")
    p.add_argument("--update", action="store_true", help="write the tables into docs/methods.md and README.md")
    a = p.parse_args(argv)
    if not a.update:
        print(headline(a.fig_dir) if a.headline else markdown(a.fig_dir))
        return
    for path, marker in BLOCKS:
        with open(path) as f:
            text = replace_block(f.read(), marker, markdown(a.fig_dir) if marker == "tables" else headline(a.fig_dir))
        atomic_write(path, lambda f: f.write(text), mode="w")
        print(f"wrote the {marker} of {os.path.relpath(path, ROOT)}")


if __name__ == "__main__":
    run_main(main)
