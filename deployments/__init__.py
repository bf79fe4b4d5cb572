"""How the flows are deployed: work pool and concurrency limit set-up."""
