"""A run's cells table as MLflow users read it: `load_table`."""

from mlflow.tracking import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from benchlib.store.records import Run


def cells_table(client: MlflowClient, run: Run):
    """The run's `cells.json` as a pandas DataFrame, one row per finished cell. load_table
    finds tables by the run's `mlflow.loggedArtifacts` tag (as MLflow's UI does), searching
    through the global tracking URI whatever the client's: set for the call, then put back."""
    experiment = client.get_experiment_by_name(run.experiment).experiment_id
    with _use_tracking_uri(client.tracking_uri):
        return client.load_table(experiment, "cells.json", run_ids=[run.mlflow_run_id])
