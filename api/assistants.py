"""Assistants: named presets of run options (`/v1/assistants`), and filling in a run or chat
request that names one.

An assistant holds what a client would otherwise send with every run: the model, the system
prompt (`instructions`), the MCP servers and the limits. A request naming it (`assistant`)
takes each option the request did not set itself (pydantic's `model_fields_set`: a field sent
with its default value counts as set); what the request sets wins. The filled-in request is
then checked like any other (prompt size, scope, servers), so an assistant lets a caller do
nothing it could not ask for directly. The store keeps each assistant's options as the JSON
validated here (`worker.store.assistants`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from api.deps import get_store
from api.errors import APIError
from api.run_start import PresetRun
from api.schemas import AssistantName, CreateOrchestration
from worker.settings import Settings
from worker.store.assistants import StoredAssistant
from workflows.limits import ModelName, ServerNames
from workflows.run_request import ApprovalTimeoutSeconds, ContextBudgetBytes, MaxSteps, ToolTimeoutSeconds
from workflows.validation_errors import first_problem

MAX_DESCRIPTION_CHARS = 2000


class AssistantOptions(BaseModel):
    """What an assistant presets. Every field is optional: one it leaves unset is the request's
    own, or the run's default. The bounds are a run's (`workflows.run_request`)."""

    model_config = ConfigDict(extra="forbid")

    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION_CHARS, description="For people; never sent to the model."
    )
    model: ModelName = Field(default=None, description="The model of its runs.")
    instructions: str | None = Field(default=None, description="The system prompt of its runs.")
    mcp_servers: ServerNames = Field(default=None, description="The MCP servers its runs use.")
    max_steps: MaxSteps | None = None
    tool_timeout_seconds: ToolTimeoutSeconds | None = None
    approval_timeout_seconds: ApprovalTimeoutSeconds | None = None
    context_budget_bytes: ContextBudgetBytes | None = None

    def run_options(self) -> dict[str, Any]:
        """The run options it sets, as a run body's fields."""
        return self.model_dump(exclude={"description"}, exclude_none=True)

    def patched(self, patch: AssistantOptions) -> AssistantOptions:
        """`patch` applied as a JSON merge patch (RFC 7396): a field it omits stays, one it sets
        to null is cleared; the result is validated as a whole."""
        merged = self.model_dump(exclude_none=True) | patch.model_dump(exclude_unset=True)
        try:
            return AssistantOptions.model_validate({name: value for name, value in merged.items() if value is not None})
        except ValidationError as err:
            raise APIError(422, "invalid_request", first_problem(err)) from None


class NewAssistant(AssistantOptions):
    """Body of POST /v1/assistants: its name and options."""

    name: AssistantName


class Assistant(AssistantOptions):
    """An assistant as the API shows it (unset options are null)."""

    name: str
    created_at: datetime
    updated_at: datetime


class AssistantList(BaseModel):
    """GET /v1/assistants, by name."""

    assistants: list[Assistant]


def options_of(stored: StoredAssistant) -> AssistantOptions:
    return AssistantOptions.model_validate(stored.spec)


def view_of(stored: StoredAssistant) -> Assistant:
    return Assistant(
        name=stored.name,
        created_at=_utc(stored.created_at),
        updated_at=_utc(stored.updated_at),
        **options_of(stored).model_dump(),
    )


def check_prompt_size(options: AssistantOptions, settings: Settings) -> None:
    """An assistant's instructions fit in a run's prompt (413 otherwise, as for a run)."""
    size = len((options.instructions or "").encode())
    if size > settings.max_prompt_bytes:
        raise APIError(
            413, "prompt_too_large", f"instructions are {size} bytes; the limit is {settings.max_prompt_bytes}"
        )


def unknown_assistant(name: str) -> APIError:
    return APIError(404, "unknown_assistant", f"no assistant {name!r}")


class AssistantPresets:
    """A dependency: fills in a run body from the assistant it names, from the store."""

    def __init__(self, request: Request) -> None:
        self._request = request

    async def apply(self, body: CreateOrchestration) -> CreateOrchestration:
        """`body` with its assistant's options where it set none; unchanged when it names none.
        422 `unknown_assistant` for a name not in the store, 503 without a store."""
        if body.assistant is None:
            return body
        stored = await get_store(self._request).assistants.get(body.assistant)
        if stored is None:
            raise APIError(422, "unknown_assistant", f"assistant: no assistant {body.assistant!r}")
        try:
            return PresetRun.fill(body, options_of(stored).run_options())
        except ValidationError as err:
            raise APIError(422, "invalid_request", first_problem(err)) from None


AssistantPresetsDep = Annotated[AssistantPresets, Depends()]


def _utc(moment: datetime) -> datetime:
    """Some databases (SQLite) return the stored UTC time without its zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
