"""MLflow gets a run's cells as one table on the run's MLflow run, not a child run per cell:
cell.mlflow_run_id goes, and queued per-cell entries (a child run to create, scores to log on
one) become what they now mean, "the cells table is stale", pushed as a rewrite of the table.

Revision 0008, on top of 0007.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    op.execute("UPDATE mlflowpending SET kind = 'cell', payload = '{}' WHERE cell_id IS NOT NULL")
    with op.batch_alter_table("cell", schema=None) as batch_op:
        batch_op.drop_column("mlflow_run_id")


def downgrade() -> None:
    with op.batch_alter_table("cell", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("mlflow_run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True)
        )
