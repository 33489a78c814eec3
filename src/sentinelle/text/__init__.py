"""Message text: normalisation, canonical forms and obfuscation."""

__all__ = ["canonical", "normaliser", "obfuscation"]
