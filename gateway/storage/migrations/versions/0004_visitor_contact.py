"""Every way a visitor reaches the site besides a call (issue 13): the source of a call
link in the call records, voicemails, messages left for the site, and chat conversations
with their messages.

Revision ID: 0004_visitor_contact
Revises: 0003_call_ratings
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_visitor_contact"
down_revision = "0003_call_ratings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "call_records",
        sa.Column("visitor_source", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "voicemails",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("call_id", sa.Text),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("file", sa.Text, nullable=False),
        sa.Column("client", sa.Text, nullable=False, server_default=""),
        sa.Column("page", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_name", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_source", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("voicemails_site_received", "voicemails", ["site", "received_at"])
    op.create_table(
        "messages",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False, server_default=""),
        sa.Column("contact", sa.Text, nullable=False),
        sa.Column("contact_kind", sa.Text, nullable=False),
        sa.Column("conversation_id", sa.Text),
        sa.Column("client", sa.Text, nullable=False, server_default=""),
        sa.Column("page", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_source", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("messages_site_received", "messages", ["site", "received_at"])
    op.create_table(
        "conversations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("ended_at", sa.Float),
        sa.Column("client", sa.Text, nullable=False, server_default=""),
        sa.Column("page", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_name", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_source", sa.Text, nullable=False, server_default=""),
        sa.Column("operator", sa.Text),
        sa.Column("message_count", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("conversations_site_started", "conversations", ["site", "started_at"])
    op.create_table(
        "conversation_messages",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "conversation_id", sa.String(32), sa.ForeignKey("conversations.id"), nullable=False
        ),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("sender", sa.Text, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("destination", sa.Text),
        sa.Column("delivery", sa.Text, nullable=False, server_default=""),
    )
    op.create_index(
        "conversation_messages_conversation",
        "conversation_messages",
        ["conversation_id", "seq"],
    )


def downgrade() -> None:
    op.drop_table("conversation_messages")
    op.drop_table("conversations")
    op.drop_table("messages")
    op.drop_table("voicemails")
    op.drop_column("call_records", "visitor_source")
