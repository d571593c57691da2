"""Prefect flows, one per file; each body reads like a table of contents."""
