"""The fixture table: scenarios stored through the admin API, one row per version (an update
adds one, a delete only marks them), with the integrity hash checked when a run uses them.

Revision 0003, on top of 0002.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "fixture",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("suite", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("scenario_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("vars", sa.JSON(), nullable=True),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("suite", "scenario_id", "version"),
    )
    with op.batch_alter_table("fixture", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fixture_suite"), ["suite"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("fixture", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fixture_suite"))

    op.drop_table("fixture")
