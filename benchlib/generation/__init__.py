"""Getting outputs: providers and model specs, preflight checks, the response cache
and running one cell."""
