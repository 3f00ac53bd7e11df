"""Weights on disk: format detection by content (no torch), loading, single files, conversion, vocab."""
