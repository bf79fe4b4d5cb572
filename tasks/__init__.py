"""Prefect tasks: thin wrappers that call benchlib."""
