"""Reading, checking and splitting the training data (the ingest stage),
and reported verdicts merged into it."""

__all__ = [
    "cleaning",
    "feedback",
    "formats",
    "reading",
    "sources",
    "split",
    "spreadsheets",
    "tables",
    "trust",
]
