"""Request-a-Call: callbacks and their history (the schema of the callback database of
releases before the storage layer; such a file is adopted as this version).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "callbacks",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("number", sa.Text, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
        sa.Column("due_at", sa.Float, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("claimed_by", sa.Text),
    )
    op.create_index("callbacks_due", "callbacks", ["status", "due_at"])
    op.create_index("callbacks_number", "callbacks", ["number", "created_at"])
    op.create_table(
        "callback_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("callback_id", sa.String(32), sa.ForeignKey("callbacks.id"), nullable=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("callback_events")
    op.drop_table("callbacks")
