"""Print the comparison of the methods (methods/) from the result files in fig/: the tables of
docs/methods.md, or the README's headline table. It reads, never trains or scores.

    python compare.py                 # docs/methods.md's tables: Sprites, speech, time series
    python compare.py --headline      # the README's one table across methods and modalities
"""
from comparison import headline, markdown
from utils import ArgumentParser, run_main


def main(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fig-dir", default="fig", help="the folder of the result files (default fig)")
    p.add_argument("--headline", action="store_true", help="the README's table instead of docs/methods.md's")
    a = p.parse_args(argv)
    print(headline(a.fig_dir) if a.headline else markdown(a.fig_dir))


if __name__ == "__main__":
    run_main(main)
