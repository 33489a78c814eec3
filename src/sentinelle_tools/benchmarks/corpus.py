"""A synthetic, SMS-like, labelled corpus of any size, for scaling benchmarks.

One word-level Markov chain (order 2) per class is trained on a base collection
(the full SMS Spam Collection in ../shared/datasets, or the bundled subset), and
N messages are sampled with the base collection's class ratio. Every message is
unique: a sample that repeats an earlier one is drawn again, and after a few
tries gets a distinguishing token, so deduplication never collapses the corpus.
Seeded and deterministic: the same base, N and seed give the same bytes.

    python -m sentinelle_tools.benchmarks.corpus -n 100000 -o /tmp/corpus-100k.tsv
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
from collections import defaultdict
from pathlib import Path

from sentinelle import io

log = logging.getLogger("sentinelle.corpus")

START, END = "\x02", "\x03"
DEFAULT_BASE = Path("../shared/datasets/sms_spam_collection.tsv")
MAX_WORDS = 60  # SMS are short; cap a runaway chain


class Chain:
    """An order-2 word Markov chain with cumulative weights for fast sampling."""

    def __init__(self, messages: list[str]) -> None:
        counts: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for message in messages:
            words = [START, START, *message.split(), END]
            for a, b, c in zip(words, words[1:], words[2:], strict=False):
                counts[(a, b)][c] += 1
        self.table: dict[tuple[str, str], tuple[list[str], list[int]]] = {}
        for state in sorted(counts):
            nexts = sorted(counts[state].items())
            cum, total = [], 0
            for _, n in nexts:
                total += n
                cum.append(total)
            self.table[state] = ([w for w, _ in nexts], cum)
        self.vocabulary = sorted({w for ws, _ in self.table.values() for w in ws} - {END})

    def sample(self, rng: random.Random) -> str:
        a, b, words = START, START, []
        while len(words) < MAX_WORDS:
            choices, cum = self.table[(a, b)]
            c = rng.choices(choices, cum_weights=cum)[0]
            if c == END:
                break
            words.append(c)
            a, b = b, c
        return " ".join(words)


def read_base(path: Path) -> dict[str, list[str]]:
    """Messages per label from a UCI-layout file (``label<TAB>text``)."""
    by_label: dict[str, list[str]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").split("\n"):
        label, sep, text = line.rstrip("\r").partition("\t")
        if sep and text.strip():
            by_label[label.strip().lower()].append(text.strip())
    return by_label


def generate(base: dict[str, list[str]], n: int, seed: int) -> list[tuple[str, str]]:
    """``n`` unique ``(label, text)`` pairs with the base's class ratio, seeded."""
    rng = random.Random(seed)
    labels = sorted(base)
    total = sum(len(base[label]) for label in labels)
    quota = {label: round(n * len(base[label]) / total) for label in labels}
    quota[labels[0]] += n - sum(quota.values())
    chains = {label: Chain(base[label]) for label in labels}
    seen: set[str] = set()
    rows: list[tuple[str, str]] = []
    for label in labels:
        chain = chains[label]
        for _ in range(quota[label]):
            for _attempt in range(5):
                text = chain.sample(rng)
                if text and text not in seen:
                    break
            else:  # still a repeat: make it unique with words from the class's vocabulary
                while not text or text in seen:
                    text = f"{text} {rng.choice(chain.vocabulary)}".strip()
            seen.add(text)
            rows.append((label, text))
    rng.shuffle(rows)
    return rows


def write_uci(rows: list[tuple[str, str]], dest: Path) -> None:
    io.write_text(dest, "".join(f"{label}\t{text}\n" for label, text in rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--messages", type=int, required=True, help="messages to generate")
    parser.add_argument("-o", "--output", type=Path, required=True, help="UCI-layout TSV to write")
    parser.add_argument(
        "--base", type=Path, default=DEFAULT_BASE, help="base collection (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="corpus: %(message)s")
    if not args.base.is_file():
        sys.stderr.write(f"corpus: error: {args.base}: base collection not found\n")
        return 2
    rows = generate(read_base(args.base), args.messages, args.seed)
    write_uci(rows, args.output)
    spam = sum(label == "spam" for label, _ in rows)
    log.info("wrote %s: %d messages (%d spam), all unique", args.output, len(rows), spam)
    return 0


if __name__ == "__main__":
    sys.exit(main())
