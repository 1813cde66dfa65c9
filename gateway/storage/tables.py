"""The schema at the newest migration, as SQLAlchemy Core tables (the queries use these;
the migrations in `migrations/versions/` build the same tables step by step).

Times are wall-clock seconds since the epoch (floats), JSON is stored as text: both read
the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# Request-a-Call requests (gateway.storage.callbacks).
callbacks = Table(
    "callbacks",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("site", Text, nullable=False),
    Column("number", Text, nullable=False),
    Column("details", Text, nullable=False),  # JSON: name, page, reason
    Column("due_at", Float, nullable=False),
    Column("status", Text, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    Column("claimed_by", Text),
    Index("callbacks_due", "status", "due_at"),
    Index("callbacks_number", "number", "created_at"),
)

callback_events = Table(
    "callback_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("callback_id", String(32), ForeignKey("callbacks.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("event", Text, nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Index("callback_events_callback", "callback_id", "seq"),
)

# One record per call and per callback placed (gateway.storage.records).
call_records = Table(
    "call_records",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", Text, nullable=False),  # call | callback
    Column("site", Text, nullable=False),
    Column("worker", Text, nullable=False, server_default=""),
    Column("started_at", Float, nullable=False),
    Column("answered_at", Float),
    Column("ended_at", Float),
    Column("ring_seconds", Float),
    Column("talk_seconds", Float),
    Column("outcome", Text, nullable=False),
    Column("end_cause", Text, nullable=False, server_default=""),
    Column("end_detail", Text, nullable=False, server_default=""),
    Column("destination", Text),
    Column("client", Text, nullable=False, server_default=""),
    Column("number", Text),
    Column("page", Text, nullable=False, server_default=""),
    Column("visitor_name", Text, nullable=False, server_default=""),
    Column("visitor_reason", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False, server_default=""),
    Column("visitor_source", Text, nullable=False, server_default=""),
    Column("codecs", Text, nullable=False, server_default="{}"),  # JSON
    Column("quality", Text, nullable=False, server_default="{}"),  # JSON, per leg
    Index("call_records_started", "started_at"),
    Index("call_records_site_started", "site", "started_at"),
)

# Visitors' ratings of their calls, one per call, keyed by the record's id; no foreign key:
# a rating may be taken before the call's record is written (gateway.storage.ratings).
call_ratings = Table(
    "call_ratings",
    metadata,
    Column("call_id", String(32), primary_key=True),
    Column("site", Text, nullable=False),
    Column("rating", Integer, nullable=False),
    Column("comment", Text, nullable=False, server_default=""),
    Column("rated_at", Float, nullable=False),
    CheckConstraint("rating BETWEEN 1 AND 5", name="call_ratings_rating"),
    Index("call_ratings_site_rated", "site", "rated_at"),
)

# Calls in progress on every worker and node (gateway.storage.live).
live_calls = Table(
    "live_calls",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("kind", Text, nullable=False),
    Column("worker", Text, nullable=False),
    Column("site", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("answered_at", Float),
    Column("destination", Text),
    Column("client", Text, nullable=False, server_default=""),
    Column("page", Text, nullable=False, server_default=""),
    Column("visitor_name", Text, nullable=False, server_default=""),
    Column("updated_at", Float, nullable=False),
    Index("live_calls_worker", "worker"),
)

# Each worker's registration with each site's trunk (gateway.storage.registrations).
registrations = Table(
    "registrations",
    metadata,
    Column("worker", Text, primary_key=True),
    Column("site", Text, primary_key=True),
    Column("state", Text, nullable=False),
    Column("registrar", Text, nullable=False),
    Column("changed_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("detail", Text, nullable=False, server_default=""),
    Column("retry_at", Float),
)

# Events for the site's webhooks and mails, delivered at least once (gateway.storage.outbox).
outbox = Table(
    "outbox",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("site", Text, nullable=False),
    Column("type", Text, nullable=False),
    Column("payload", Text, nullable=False),  # JSON
    Column("created_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("delivered_at", Float),
    Column("last_error", Text, nullable=False, server_default=""),
    Index("outbox_due", "delivered_at", "next_attempt_at"),
)

# The admin page's users (from [[admin.users]]), sessions and login attempts.
admin_users = Table(
    "admin_users",
    metadata,
    Column("name", Text, primary_key=True),
    Column("password_hash", Text, nullable=False),
)

admin_sessions = Table(
    "admin_sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # SHA-256 of the cookie's token
    Column("user_name", Text, nullable=False),
    Column("csrf_token", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("admin_sessions_expires", "expires_at"),
)

login_attempts = Table(
    "login_attempts",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("client", Text, nullable=False),
    Column("user_name", Text, nullable=False),
    Column("at", Float, nullable=False),
    Index("login_attempts_client", "client", "at"),
    Index("login_attempts_user", "user_name", "at"),
)

# Voice messages left when nobody could answer (gateway.storage.voicemails); the audio is a
# file in the state directory.
voicemails = Table(
    "voicemails",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("site", Text, nullable=False),
    Column("call_id", Text),  # the call nobody answered, when one came first
    Column("started_at", Float, nullable=False),  # when the recording began
    Column("received_at", Float, nullable=False),
    Column("seconds", Float, nullable=False),
    Column("size", Integer, nullable=False),  # bytes of the file
    Column("file", Text, nullable=False),  # its name in the state directory's voicemail/
    Column("client", Text, nullable=False, server_default=""),
    Column("page", Text, nullable=False, server_default=""),
    Column("visitor_name", Text, nullable=False, server_default=""),
    Column("visitor_source", Text, nullable=False, server_default=""),
    Index("voicemails_site_received", "site", "received_at"),
)

# Written messages left for the site with a way back (gateway.storage.messages).
messages = Table(
    "messages",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("site", Text, nullable=False),
    Column("received_at", Float, nullable=False),
    Column("text", Text, nullable=False),
    Column("name", Text, nullable=False, server_default=""),
    Column("contact", Text, nullable=False),  # a phone number or an email address
    Column("contact_kind", Text, nullable=False),  # phone | email
    Column("conversation_id", Text),  # the chat it followed, if any
    Column("client", Text, nullable=False, server_default=""),
    Column("page", Text, nullable=False, server_default=""),
    Column("visitor_source", Text, nullable=False, server_default=""),
    Index("messages_site_received", "site", "received_at"),
)

# Chat conversations and their messages (gateway.storage.conversations).
conversations = Table(
    "conversations",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("site", Text, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("ended_at", Float),
    Column("client", Text, nullable=False, server_default=""),
    Column("page", Text, nullable=False, server_default=""),
    Column("visitor_name", Text, nullable=False, server_default=""),
    Column("visitor_source", Text, nullable=False, server_default=""),
    Column("operator", Text),  # the destination that replied
    Column("message_count", Integer, nullable=False, server_default="0"),
    Index("conversations_site_started", "site", "started_at"),
)

conversation_messages = Table(
    "conversation_messages",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("conversation_id", String(32), ForeignKey("conversations.id"), nullable=False),
    Column("at", Float, nullable=False),
    Column("sender", Text, nullable=False),  # visitor | operator
    Column("text", Text, nullable=False),
    Column("destination", Text),  # the operator who wrote it, or the ones it went to
    Column("delivery", Text, nullable=False, server_default=""),  # delivered | failed
    Index("conversation_messages_conversation", "conversation_id", "seq"),
)
