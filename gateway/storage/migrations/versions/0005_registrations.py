"""Where each worker's registration with a site's trunk stands (issue 14), for the admin
page and `/api/admin/registrations`.

Revision ID: 0005_registrations
Revises: 0004_visitor_contact
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_registrations"
down_revision = "0004_visitor_contact"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("worker", sa.Text, primary_key=True),
        sa.Column("site", sa.Text, primary_key=True),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("registrar", sa.Text, nullable=False),
        sa.Column("changed_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float),
        sa.Column("detail", sa.Text, nullable=False, server_default=""),
        sa.Column("retry_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("registrations")
