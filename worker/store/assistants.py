"""Saved assistants: named presets of run options, kept as the JSON the API validated."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from worker.store.database import sessions
from worker.store.tables import AssistantRow, utcnow


@dataclass(frozen=True)
class StoredAssistant:
    name: str
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AssistantExists(Exception):
    pass


class AssistantChanged(Exception):
    """The assistant is no longer what the change was made from (another change came first)."""


class AssistantStore:
    """The `assistants` table."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._sessions = sessions(engine)

    async def list(self) -> list[StoredAssistant]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(AssistantRow).order_by(AssistantRow.name))).all()
            return [_stored(row) for row in rows]

    async def get(self, name: str) -> StoredAssistant | None:
        async with self._sessions() as session:
            row = await session.get(AssistantRow, name)
            return None if row is None else _stored(row)

    async def create(self, name: str, spec: dict[str, Any]) -> StoredAssistant:
        try:
            async with self._sessions.begin() as session:
                if await session.get(AssistantRow, name) is not None:
                    raise AssistantExists(name)
                row = AssistantRow(name=name, spec=spec)
                session.add(row)
        except IntegrityError:  # created meanwhile by another request
            raise AssistantExists(name) from None
        return _stored(row)

    async def replace(
        self, name: str, spec: dict[str, Any], *, was: dict[str, Any] | None = None
    ) -> StoredAssistant | None:
        """Store `spec`; None when there is no such assistant. With `was` (the spec it was
        derived from), AssistantChanged if the stored one differs by now."""
        async with self._sessions.begin() as session:
            row = await session.get(AssistantRow, name, with_for_update=True)
            if row is None:
                return None
            if was is not None and row.spec != was:
                raise AssistantChanged(name)
            row.spec = spec
            row.updated_at = utcnow()
        return _stored(row)

    async def delete(self, name: str) -> bool:
        async with self._sessions.begin() as session:
            deleted = await session.execute(delete(AssistantRow).where(AssistantRow.name == name))
            return bool(deleted.rowcount)


def _stored(row: AssistantRow) -> StoredAssistant:
    return StoredAssistant(name=row.name, spec=dict(row.spec), created_at=row.created_at, updated_at=row.updated_at)
