"""MLflow: what a run shows there, and the outbox that gets it there in the background."""
