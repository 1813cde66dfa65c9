"""The gateway's storage: one database (`[storage] database`, SQLite or PostgreSQL) for
callbacks, call records and their ratings, calls in progress, the notification outbox,
admin users and sessions, voicemails, messages left and chat conversations. `await
Database.open(url)` migrates the schema to the newest version and gives one store per
concept; docs/architecture.md places it in the layers.
"""

from __future__ import annotations

from gateway.storage import migrate
from gateway.storage.admin import AdminSession, AdminStore
from gateway.storage.callback_lifecycle import FINAL, CallbackEvent, CallbackStatus
from gateway.storage.callbacks import Callback, CallbackStore
from gateway.storage.conversations import ChatMessage, Conversation, ConversationStore
from gateway.storage.database import Database
from gateway.storage.engine import DatabaseUrl, StorageError
from gateway.storage.live import LiveCall, LiveCalls, LiveRegistry, RedisLiveCalls
from gateway.storage.messages import CONTACT_KINDS, LeftMessage, MessageStore
from gateway.storage.outbox import Outbox, OutboxEvent
from gateway.storage.ratings import CallRating, RatingStore
from gateway.storage.records import OUTCOMES, CallRecord, RecordStore
from gateway.storage.registrations import RegistrationStatus, RegistrationStore
from gateway.storage.voicemails import Voicemail, VoicemailStore

__all__ = [
    "CONTACT_KINDS",
    "FINAL",
    "OUTCOMES",
    "AdminSession",
    "AdminStore",
    "CallRating",
    "CallRecord",
    "Callback",
    "CallbackEvent",
    "CallbackStatus",
    "CallbackStore",
    "ChatMessage",
    "Conversation",
    "ConversationStore",
    "Database",
    "DatabaseUrl",
    "LeftMessage",
    "LiveCall",
    "LiveCalls",
    "LiveRegistry",
    "MessageStore",
    "Outbox",
    "OutboxEvent",
    "RatingStore",
    "RecordStore",
    "RedisLiveCalls",
    "RegistrationStatus",
    "RegistrationStore",
    "StorageError",
    "Voicemail",
    "VoicemailStore",
    "migrate",
]
