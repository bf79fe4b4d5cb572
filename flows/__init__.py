"""Prefect flows: the benchmark pipeline and its subflows; the logic lives in benchlib."""
