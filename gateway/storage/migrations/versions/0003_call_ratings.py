"""Visitors' ratings of their calls, kept with the call's record: one row per rated call,
keyed by the call's id (the record's id).

A table of its own rather than columns of `call_records`: the rating may come before the
record (the call history is written from a queue, the rating as soon as the visitor sends
it), so it has no foreign key to the record; the two are joined when read (a record stays
one row) and forgotten together (gateway.storage.records).

Revision ID: 0003_call_ratings
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_call_ratings"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "call_ratings",
        sa.Column("call_id", sa.String(32), primary_key=True),
        sa.Column("site", sa.Text, nullable=False),
        sa.Column("rating", sa.Integer, nullable=False),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("rated_at", sa.Float, nullable=False),
        sa.CheckConstraint("rating BETWEEN 1 AND 5", name="call_ratings_rating"),
    )
    op.create_index("call_ratings_site_rated", "call_ratings", ["site", "rated_at"])


def downgrade() -> None:
    op.drop_table("call_ratings")
