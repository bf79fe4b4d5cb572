"""run.rank_on: what a run's leaderboard rows are ranked on (the suite's `rank_on` as planned;
`final` for every earlier run, whose chains were ranked on all their steps mixed). Stored
leaderboards of earlier runs are in the old untyped shape and ranked the old way: they are
cleared, and computed again (typed, on the final step) when next read or published.

Revision 0010, on top of 0009.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "rank_on",
                sqlmodel.sql.sqltypes.AutoString(),
                server_default="final",
                nullable=False,
            )
        )
    op.execute("UPDATE run SET leaderboard = NULL")


def downgrade() -> None:
    with op.batch_alter_table("run", schema=None) as batch_op:
        batch_op.drop_column("rank_on")
