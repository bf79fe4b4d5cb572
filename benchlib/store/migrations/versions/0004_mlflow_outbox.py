"""The MLflow outbox (`mlflowpending`): what MLflow has yet to receive, written with the
results it mirrors (see benchlib.tracking.outbox).

Revision 0004, on top of 0003.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "mlflowpending",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("cell_id", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["cell_id"],
            ["cell.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("mlflowpending", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_mlflowpending_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("mlflowpending", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_mlflowpending_run_id"))

    op.drop_table("mlflowpending")
