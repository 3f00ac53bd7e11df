"""Deterministic tiny random-weight models of every family, and tiny adapters for them."""
