"""pairjudgement: one judge's choice between two blind outputs (`judge_mode: pairwise`).

Revision 0012, on top of 0011.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0012"
down_revision = "0011"


def upgrade() -> None:
    op.create_table(
        "pairjudgement",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("pair_id", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("candidate_a", sa.Integer(), nullable=False),
        sa.Column("candidate_b", sa.Integer(), nullable=False),
        sa.Column("judge", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("choice", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("comment", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["candidate_a"],
            ["candidate.id"],
        ),
        sa.ForeignKeyConstraint(
            ["candidate_b"],
            ["candidate.id"],
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["run.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("run_id", "pair_id", "judge"),
    )
    with op.batch_alter_table("pairjudgement", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pairjudgement_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pairjudgement", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pairjudgement_run_id"))

    op.drop_table("pairjudgement")
