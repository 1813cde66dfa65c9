"""The site owner's side: call records, calls in progress, the notification outbox, admin
users, sessions and login attempts.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("callback_events_callback", "callback_events", ["callback_id", "seq"])
    op.create_table(
        "call_records",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("worker", sa.Text, nullable=False, server_default=""),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("answered_at", sa.Float),
        sa.Column("ended_at", sa.Float),
        sa.Column("ring_seconds", sa.Float),
        sa.Column("talk_seconds", sa.Float),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("end_cause", sa.Text, nullable=False, server_default=""),
        sa.Column("end_detail", sa.Text, nullable=False, server_default=""),
        sa.Column("destination", sa.Text),
        sa.Column("client", sa.Text, nullable=False, server_default=""),
        sa.Column("number", sa.Text),
        sa.Column("page", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_name", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.Text, nullable=False, server_default=""),
        sa.Column("codecs", sa.Text, nullable=False, server_default="{}"),
        sa.Column("quality", sa.Text, nullable=False, server_default="{}"),
    )
    op.create_index("call_records_started", "call_records", ["started_at"])
    op.create_index("call_records_site_started", "call_records", ["site", "started_at"])
    op.create_table(
        "live_calls",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("worker", sa.Text, nullable=False),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("answered_at", sa.Float),
        sa.Column("destination", sa.Text),
        sa.Column("client", sa.Text, nullable=False, server_default=""),
        sa.Column("page", sa.Text, nullable=False, server_default=""),
        sa.Column("visitor_name", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_index("live_calls_worker", "live_calls", ["worker"])
    op.create_table(
        "outbox",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.Float, nullable=False),
        sa.Column("delivered_at", sa.Float),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("outbox_due", "outbox", ["delivered_at", "next_attempt_at"])
    op.create_table(
        "admin_users",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("password_hash", sa.Text, nullable=False),
    )
    op.create_table(
        "admin_sessions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("csrf_token", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    op.create_index("admin_sessions_expires", "admin_sessions", ["expires_at"])
    op.create_table(
        "login_attempts",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("client", sa.Text, nullable=False),
        sa.Column("user_name", sa.Text, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("login_attempts_client", "login_attempts", ["client", "at"])
    op.create_index("login_attempts_user", "login_attempts", ["user_name", "at"])


def downgrade() -> None:
    for table in ("login_attempts", "admin_sessions", "admin_users", "outbox", "live_calls"):
        op.drop_table(table)
    op.drop_table("call_records")
    op.drop_index("callback_events_callback", "callback_events")
