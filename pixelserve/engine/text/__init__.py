"""Prompt text: weighting syntax, long prompts, clip skip, embeddings; optional translation."""
