"""mlflowpending.set_aside_at: an entry MLflow refused for good (a bad value, an artifact store
the client cannot write) is set aside with its error instead of being retried at every push and
holding up the entries behind it; `benchlib sync --retry-set-aside` puts it back.

Revision 0011, on top of 0010.
"""

import sqlalchemy as sa
import sqlmodel
import sqlmodel.sql.sqltypes
from alembic import op

revision = "0011"
down_revision = "0010"


def upgrade() -> None:
    with op.batch_alter_table("mlflowpending", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("set_aside_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("mlflowpending", schema=None) as batch_op:
        batch_op.drop_column("set_aside_at")
