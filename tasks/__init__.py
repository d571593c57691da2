"""Thin Prefect task adapters over `yunying`, one module per capability.

Retry policy lives here: tasks retry `TransientError` with backoff and jitter and never retry
`PermanentError`. Tasks take settings and ids, never live clients, sessions or engines.
"""
