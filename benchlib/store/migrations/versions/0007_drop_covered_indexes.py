"""Drop the single-column run_id indexes of cell and candidate: 0002's composite indexes
start with run_id and serve the same lookups, and every inserted cell and candidate paid for
the extra index.

Revision 0007, on top of 0006.
"""

from alembic import op

revision = "0007"
down_revision = "0006"

COVERED = {"cell": "ix_cell_run_id", "candidate": "ix_candidate_run_id"}


def upgrade() -> None:
    for table, index in COVERED.items():
        op.drop_index(index, table_name=table)


def downgrade() -> None:
    for table, index in COVERED.items():
        op.create_index(index, table, ["run_id"])
