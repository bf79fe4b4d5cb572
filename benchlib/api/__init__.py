"""The admin API: trigger, follow, judge and read benchmarks over HTTP (FastAPI)."""
