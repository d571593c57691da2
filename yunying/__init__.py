"""Yunying: the operations team's daily loop as plain, typed Python.

This package never imports Prefect; `tasks/` and `flows/` adapt it to Prefect.
"""
