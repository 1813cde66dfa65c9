"""Every way a visitor reaches the site besides a call (issue 13): the source of a call
link in the call records, voicemails, messages left for the site, and chat conversations
with their messages.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "call_records",
        sa.Column("visitor_source", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_column("call_records", "visitor_source")
