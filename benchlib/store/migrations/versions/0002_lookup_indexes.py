"""Indexes for the hot lookups (a run's cells in grid order; a run's candidates by cell and
attempt: run_candidates, scoring, the leaderboard), and status columns wide enough for any
status to come (0001's were as wide as the longest status then; PostgreSQL enforces it).

Revision 0002, on top of 0001.
"""

import sqlalchemy as sa
from alembic import op

# 0001's widths: the longest status of each enum then.
STATUS_WIDTHS = {"run": 14, "cell": 9}

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_index("ix_cell_run_index", "cell", ["run_id", "index"])
    op.create_index("ix_candidate_run_cell_index", "candidate", ["run_id", "cell_id", "index"])
    for table, width in STATUS_WIDTHS.items():
        with op.batch_alter_table(table) as batch:
            batch.alter_column("status", type_=sa.String(32), existing_type=sa.String(width))


def downgrade() -> None:
    for table, width in STATUS_WIDTHS.items():
        with op.batch_alter_table(table) as batch:
            batch.alter_column("status", type_=sa.String(width), existing_type=sa.String(32))
    op.drop_index("ix_candidate_run_cell_index", table_name="candidate")
    op.drop_index("ix_cell_run_index", table_name="cell")
