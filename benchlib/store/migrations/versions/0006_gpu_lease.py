"""gpulease: the `gpu` slot lease a flow run holds (was a Prefect variable; see records.GpuLease).

Revision 0006, on top of 0005.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0006"
down_revision = "0005"


def upgrade() -> None:
    op.create_table(
        "gpulease",
        sa.Column("flow_run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("lease_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("flow_run_id"),
    )


def downgrade() -> None:
    op.drop_table("gpulease")
