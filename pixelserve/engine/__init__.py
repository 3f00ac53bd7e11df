"""The only package that imports torch and diffusers (an import-linter contract keeps it so)."""
