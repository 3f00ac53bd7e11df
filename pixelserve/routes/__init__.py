"""Dialect-neutral HTTP routes: health, signed image URLs, and shared FastAPI dependencies."""
