"""/v1/assistants: saved presets of run options (`api.assistants`). Admins manage them; any
caller may read them and start runs with them (`assistant` on a run or chat completion)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status

from api.assistants import (
    Assistant,
    AssistantList,
    AssistantOptions,
    NewAssistant,
    check_prompt_size,
    options_of,
    unknown_assistant,
    view_of,
)
from api.auth import Admin, Caller
from api.deps import SettingsDep, StoreDep
from api.errors import APIError, ErrorResponse, error_responses
from api.schemas import AssistantName
from worker.store.assistants import AssistantChanged, AssistantExists

router = APIRouter(prefix="/v1/assistants", tags=["assistants"])

NamePath = Annotated[AssistantName, Path(description="The assistant's name.")]
_UNKNOWN: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No assistant of that name"}}
_EXISTS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorResponse, "description": "An assistant of that name exists"}
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=Assistant,
    responses={**_EXISTS, **error_responses(400, 401, 403, 413, 422, 503)},
)
async def create_assistant(
    body: NewAssistant, _: Admin, store: StoreDep, settings: SettingsDep, response: Response
) -> Assistant:
    """Save an assistant (`admin`). Its options are checked with a run's bounds; the MCP servers
    it names are checked when a run uses it."""
    options = AssistantOptions.model_validate(body.model_dump(exclude={"name"}, exclude_none=True))
    check_prompt_size(options, settings)
    try:
        stored = await store.assistants.create(body.name, options.model_dump(mode="json", exclude_none=True))
    except AssistantExists:
        raise APIError(409, "assistant_exists", f"assistant {body.name!r} exists: PATCH it instead") from None
    response.headers["Location"] = f"/v1/assistants/{body.name}"
    return view_of(stored)


@router.get("", response_model=AssistantList, responses=error_responses(401, 403, 503))
async def list_assistants(_: Caller, store: StoreDep) -> AssistantList:
    """Every assistant, by name."""
    return AssistantList(assistants=[view_of(stored) for stored in await store.assistants.list()])


@router.get("/{name}", response_model=Assistant, responses={**_UNKNOWN, **error_responses(401, 403, 422, 503)})
async def get_assistant(name: NamePath, _: Caller, store: StoreDep) -> Assistant:
    stored = await store.assistants.get(name)
    if stored is None:
        raise unknown_assistant(name)
    return view_of(stored)


@router.patch(
    "/{name}",
    response_model=Assistant,
    responses={**_UNKNOWN, **error_responses(400, 401, 403, 409, 413, 422, 503)},
)
async def update_assistant(
    name: NamePath, patch: AssistantOptions, _: Admin, store: StoreDep, settings: SettingsDep
) -> Assistant:
    """Change an assistant (`admin`) with a JSON merge patch: an omitted field stays, one set to
    null is cleared. Runs already started keep the options they started with."""
    stored = await store.assistants.get(name)
    if stored is None:
        raise unknown_assistant(name)
    options = options_of(stored).patched(patch)
    check_prompt_size(options, settings)
    try:
        replaced = await store.assistants.replace(
            name, options.model_dump(mode="json", exclude_none=True), was=stored.spec
        )
    except AssistantChanged:
        raise APIError(409, "changed_meanwhile", f"assistant {name!r} changed meanwhile: read it and retry") from None
    if replaced is None:  # deleted meanwhile
        raise unknown_assistant(name)
    return view_of(replaced)


@router.delete(
    "/{name}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**_UNKNOWN, **error_responses(401, 403, 422, 503)},
)
async def delete_assistant(name: NamePath, _: Admin, store: StoreDep) -> Response:
    """Delete an assistant (`admin`). Runs it started go on; new runs naming it get 422."""
    if not await store.assistants.delete(name):
        raise unknown_assistant(name)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
