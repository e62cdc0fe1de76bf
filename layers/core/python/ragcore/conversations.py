"""Conversations of a user: create, list, read, delete, and the turns queries store in them.

A conversation belongs to the user who created it. Every statement names the owner (``org_id`` and
``user_id``) and runs in a tenant transaction, so row-level security keeps other organisations out and
the statements keep other members (admins included) out: someone else's conversation is "not found",
exactly like an id that does not exist.

A turn is the question and the answer with its sources, stored together in one transaction once the
answer is complete; an answer that failed or was abandoned leaves no trace.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.types.json import Jsonb

from .auth import Principal
from .condense import Turn
from .config import get_settings
from .cursors import decode_cursor, decode_position, encode_cursor, encode_position
from .db import tenant_transaction
from .errors import BadRequest, Conflict, NotFound
from .observability import logger

TITLE_MAX_CHARS = 200
# A title made from the first question: its first words, cut at a word boundary.
AUTO_TITLE_CHARS = 80
_COLUMNS = "id, title, turn_count, created_at, updated_at"
# A page of messages stops before this many bytes of JSON (next_cursor leads on): 100 answers with 50
# sources of 512 words each would exceed the 6 MB a Lambda response may hold.
MAX_PAGE_BYTES = 3 * 1024 * 1024


@dataclass(frozen=True)
class History:
    """A conversation's latest turns, oldest first, and how many turns it holds in all."""

    conversation_id: uuid.UUID
    turns: tuple[Turn, ...]
    turn_count: int


def conversation_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a conversation."""
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "turn_count": row["turn_count"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
    }


def message_view(row: dict[str, Any]) -> dict[str, Any]:
    """The public JSON shape of a message: user messages say what retrieval searched with, assistant
    messages carry the sources their citations [n] refer to and the usage."""
    view: dict[str, Any] = {
        "id": str(row["id"]),
        "role": row["role"],
        "content": row["content"],
        "created_at": row["created_at"].isoformat(),
    }
    if row["role"] == "user":
        view["retrieval"] = {"query": row["retrieval_query"], "method": row["retrieval_method"]}
    else:
        view["sources"] = row["sources"]
        view["usage"] = row["usage"] or {}
    return view


def auto_title(question: str) -> str:
    """A title from the first question: whitespace collapsed, at most ``AUTO_TITLE_CHARS`` characters."""
    text = " ".join(question.split())
    if len(text) <= AUTO_TITLE_CHARS:
        return text
    cut = text[: AUTO_TITLE_CHARS - 1].rsplit(" ", 1)[0] or text[: AUTO_TITLE_CHARS - 1]
    return cut + "\u2026"


def create_conversation(principal: Principal, title: str | None = None) -> dict[str, Any]:
    """A new, empty conversation owned by the caller."""
    principal.require_user()
    with tenant_transaction(principal.org_id) as conn:
        row = conn.execute(
            f"""INSERT INTO conversations (id, org_id, user_id, title) VALUES (%s, %s, %s, %s)
                RETURNING {_COLUMNS}""",
            (uuid.uuid4(), principal.org_id, principal.user_id, title.strip() if title else None),
        ).fetchone()
    return conversation_view(row)


def list_conversations(principal: Principal, limit: int = 20, cursor: str | None = None) -> dict[str, Any]:
    """A page of the caller's conversations, most recently active first, and the next page's cursor.

    A conversation that gets a new turn while a client pages moves to the top of the first page: it is
    never listed twice going forward, and a client that starts again from the first page sees it.
    """
    principal.require_user()
    conditions = ["org_id = %s", "user_id = %s"]
    params: list[Any] = [principal.org_id, principal.user_id]
    if cursor:
        conditions.append("(updated_at, id) < (%s, %s)")
        params.extend(decode_position(cursor))
    params.append(limit + 1)
    with tenant_transaction(principal.org_id) as conn:
        rows = conn.execute(
            f"""SELECT {_COLUMNS} FROM conversations WHERE {" AND ".join(conditions)}
                ORDER BY updated_at DESC, id DESC LIMIT %s""",
            params,
        ).fetchall()
    page, more = rows[:limit], len(rows) > limit
    next_cursor = encode_position(page[-1]["updated_at"], page[-1]["id"]) if more else None
    return {"items": [conversation_view(r) for r in page], "next_cursor": next_cursor}


def _owned(conn, principal: Principal, conversation_id: uuid.UUID) -> dict[str, Any]:
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM conversations WHERE org_id = %s AND user_id = %s AND id = %s",
        (principal.org_id, principal.user_id, conversation_id),
    ).fetchone()
    if row is None:
        raise NotFound("conversation not found")
    return row


def get_conversation(
    principal: Principal, conversation_id: uuid.UUID, limit: int = 50, cursor: str | None = None
) -> dict[str, Any]:
    """One of the caller's conversations with a page of its messages in the order they were written:
    the latest ``limit`` messages, or those before ``cursor``; ``next_cursor`` leads to earlier ones.

    A page also ends before its JSON exceeds ``MAX_PAGE_BYTES`` (it always holds one message at least).
    """
    principal.require_user()
    before = None
    if cursor:
        (value,) = decode_cursor(cursor, 1)
        if not value.isdigit() or len(value) > 18:
            raise BadRequest("invalid cursor")
        before = int(value)
    with tenant_transaction(principal.org_id) as conn:
        conversation = _owned(conn, principal, conversation_id)
        rows = conn.execute(
            f"""SELECT id, role, content, sources, usage, retrieval_query, retrieval_method, created_at
                FROM conversation_messages
                WHERE org_id = %s AND conversation_id = %s {"AND id < %s" if before is not None else ""}
                ORDER BY id DESC LIMIT %s""",
            (principal.org_id, conversation_id, *([before] if before is not None else []), limit + 1),
        ).fetchall()
    views, size = [], 0
    for row in rows[:limit]:
        view = message_view(row)
        size += len(json.dumps(view, ensure_ascii=False).encode())
        if views and size > MAX_PAGE_BYTES:
            break
        views.append((row["id"], view))
    more = len(rows) > len(views)
    next_cursor = encode_cursor([str(views[-1][0])]) if more else None
    return {
        "conversation": conversation_view(conversation),
        "messages": [view for _, view in reversed(views)],
        "next_cursor": next_cursor,
    }


def delete_conversation(principal: Principal, conversation_id: uuid.UUID) -> None:
    """Delete one of the caller's conversations and its messages."""
    principal.require_user()
    with tenant_transaction(principal.org_id) as conn:
        deleted = conn.execute(
            "DELETE FROM conversations WHERE org_id = %s AND user_id = %s AND id = %s",
            (principal.org_id, principal.user_id, conversation_id),
        ).rowcount
    if not deleted:
        raise NotFound("conversation not found")


def load_history(principal: Principal, conversation_id: uuid.UUID, max_turns: int) -> History:
    """The latest ``max_turns`` turns of one of the caller's conversations, oldest first.

    NotFound when it is not the caller's; Conflict when it already holds ``conversation_max_turns``
    turns (a new question could not be stored in it).
    """
    principal.require_user()
    with tenant_transaction(principal.org_id) as conn:
        conversation = _owned(conn, principal, conversation_id)
        rows = conn.execute(
            """SELECT role, content FROM conversation_messages
               WHERE org_id = %s AND conversation_id = %s ORDER BY id DESC LIMIT %s""",
            (principal.org_id, conversation_id, 2 * max_turns),
        ).fetchall()
    limit = get_settings().conversation_max_turns
    if conversation["turn_count"] >= limit:
        raise Conflict(
            f"the conversation holds {limit} turns, the most it can; start a new one",
            code="conversation_full",
        )
    turns: list[Turn] = []
    messages = list(reversed(rows))
    # Messages are written in pairs (question, then answer) in one transaction.
    for question, answer in zip(messages[0::2], messages[1::2], strict=False):
        if question["role"] == "user" and answer["role"] == "assistant":
            turns.append(Turn(question["content"], answer["content"]))
    return History(conversation_id, tuple(turns), conversation["turn_count"])


def record_turn(
    principal: Principal,
    conversation_id: uuid.UUID,
    question: str,
    retrieval_query: str,
    retrieval_method: str,
    answer: str,
    sources: Sequence[dict[str, Any]],
    usage: dict[str, Any],
) -> bool:
    """Store a completed turn: the question, then the answer with its sources, in one transaction.

    The first turn names an untitled conversation. Returns False, storing nothing, when the
    conversation was deleted while the answer was being written.
    """
    document_ids = sorted({uuid.UUID(s["document_id"]) for s in sources})
    with tenant_transaction(principal.org_id) as conn:
        # Locks the conversation: concurrent turns are stored one after the other, each as a pair.
        updated = conn.execute(
            """UPDATE conversations
               SET turn_count = turn_count + 1, updated_at = now(), title = coalesce(title, %s)
               WHERE org_id = %s AND user_id = %s AND id = %s RETURNING id""",
            (auto_title(question), principal.org_id, principal.user_id, conversation_id),
        ).fetchone()
        if updated is None:
            logger.info(
                "conversation deleted before its turn was stored",
                extra={"conversation_id": str(conversation_id)},
            )
            return False
        conn.execute(
            """INSERT INTO conversation_messages
                   (org_id, conversation_id, role, content, retrieval_query, retrieval_method)
               VALUES (%s, %s, 'user', %s, %s, %s)""",
            (principal.org_id, conversation_id, question, retrieval_query, retrieval_method),
        )
        conn.execute(
            """INSERT INTO conversation_messages
                   (org_id, conversation_id, role, content, sources, source_document_ids, usage)
               VALUES (%s, %s, 'assistant', %s, %s, %s, %s)""",
            (principal.org_id, conversation_id, answer, Jsonb(list(sources)), document_ids, Jsonb(usage)),
        )
    return True
