"""Fit time of the two engines (``train.engine``) against training-set size: the cut-over.

Each corpus (``--corpus FILE``, label<TAB>text as ``benchmarks.corpus`` writes it, or the
bundled data's processed training split for ``bundled``) is normalised as the preprocess
stage does, its near-duplicate groups are the canonical texts, and each engine's ``fit``
runs on it in a fresh process (so numba's and scikit-learn's imports count, as in a
stage), with the project's params and settings. Prints one Markdown row per size.

    PYTHONPATH=src python -m sentinelle_tools.benchmarks.engines bundled .bench/corpus-20000.tsv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

BUNDLED = Path("data/processed/train.parquet")


def frame_of(source: str, cache: Path) -> Path:
    """A training frame (text, label, group) of ``source``, as a parquet file."""
    if source == "bundled":
        return BUNDLED
    from sentinelle.params import load
    from sentinelle.text.canonical import canonical_many
    from sentinelle.text.normaliser import Normaliser

    out = cache / (Path(source).stem + ".train.parquet")
    if out.exists():
        return out
    raw = pd.read_csv(source, sep="\t", header=None, names=["label", "message"], quoting=3)
    p = load().preprocess
    normalise = Normaliser(
        placeholders=p.placeholders, stem=p.stem, remove_stopwords=p.remove_stopwords
    )
    frame = pd.DataFrame(
        {
            "text": normalise.many(raw["message"].astype(str)),
            "label": raw["label"],
            "group": canonical_many(raw["message"].astype(str)),
        }
    )
    frame.to_parquet(out)
    return out


def time_fit(path: Path, engine: str) -> float:
    """Seconds from a fresh interpreter's start to the end of ``engine``'s fit."""
    code = (
        "import time; t = time.perf_counter()\n"
        "import pandas as pd\n"
        "from sentinelle import compute\n"
        "from sentinelle.modeling import engines\n"
        "from sentinelle.params import load\n"
        "params = load(); compute.configure(params.compute)\n"
        f"train = pd.read_parquet({str(path)!r}, columns=['text', 'label', 'group'])\n"
        f"engines.ENGINES[{engine!r}].fit(train, params)\n"
        "print(time.perf_counter() - t)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="`bundled` or corpus TSV files")
    parser.add_argument("--cache", type=Path, default=Path(".bench"))
    args = parser.parse_args()
    args.cache.mkdir(exist_ok=True)
    print("| training messages | sklearn fit (s) | fast fit (s) | sklearn / fast |")
    print("|---|---|---|---|")
    rows = []
    for source in args.sources:
        path = frame_of(source, args.cache)
        n = len(pd.read_parquet(path, columns=["label"]))
        fast = time_fit(path, "fast")
        spec = time_fit(path, "sklearn")
        rows.append({"source": source, "n": n, "sklearn": spec, "fast": fast})
        print(f"| {n:,} | {spec:.2f} | {fast:.2f} | {spec / fast:.1f} |", flush=True)
    (args.cache / "engines.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
