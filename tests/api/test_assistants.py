"""/v1/assistants over HTTP against the real stack (API, worker and store), and runs and chat
completions that name an assistant: its options fill in what the request does not set."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api.conftest import APIFactory, APIHarness
from tests.api.test_auth import as_key, keys_json
from tests.scripted_llm import Reply, ScriptedLLM

TERSE = {
    "name": "terse",
    "description": "answers in one line",
    "model": "m-asst-terse",
    "instructions": "Answer in one line.",
    "max_steps": 3,
    "tool_timeout_seconds": 20,
}


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    message: str = body["message"]
    return message


async def _create(api: APIHarness, assistant: dict[str, Any] = TERSE) -> dict[str, Any]:
    response = await api.http.post("/v1/assistants", json=assistant)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _run(api: APIHarness, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    """Start a run and return its status once completed."""
    response = await api.http.post("/v1/orchestrations", json=body, headers=headers)
    assert response.status_code in (200, 202), response.text
    return await api.wait_for(response.json()["id"], lambda s: s["status"] == "completed")


async def test_create_get_list_delete(api_stack: APIFactory, store_url: str) -> None:
    async with api_stack(database_url=store_url) as api:
        created = await _create(api)
        again = await api.http.post("/v1/assistants", json=TERSE | {"model": "other"})
        listed = await api.http.get("/v1/assistants")
        fetched = await api.http.get("/v1/assistants/terse")
        deleted = await api.http.delete("/v1/assistants/terse")
        gone = await api.http.get("/v1/assistants/terse")
        deleted_again = await api.http.delete("/v1/assistants/terse")
    assert created == fetched.json() and created["created_at"] <= created["updated_at"]
    assert {k: v for k, v in created.items() if v is not None and not k.endswith("_at")} == TERSE
    assert created["mcp_servers"] is None and created["approval_timeout_seconds"] is None
    assert "PATCH" in _error(again, 409, "assistant_exists")
    assert listed.json() == {"assistants": [created]}
    assert deleted.status_code == 204 and not deleted.content
    _error(gone, 404, "unknown_assistant")
    _error(deleted_again, 404, "unknown_assistant")


async def test_patch_keeps_omitted_fields_and_clears_null_ones(api_stack: APIFactory, store_url: str) -> None:
    async with api_stack(database_url=store_url) as api:
        created = await _create(api)
        patched = await api.http.patch(
            "/v1/assistants/terse", json={"model": "m-other", "instructions": None, "mcp_servers": ["time"]}
        )
        fetched = (await api.http.get("/v1/assistants/terse")).json()
        merge_patch = await api.http.patch(
            "/v1/assistants/terse",
            content=b'{"max_steps": null}',
            headers={"content-type": "application/merge-patch+json"},
        )
    assert patched.status_code == 200, patched.text
    assert patched.json() == fetched
    assert fetched["model"] == "m-other" and fetched["mcp_servers"] == ["time"]
    assert fetched["instructions"] is None
    assert fetched["description"] == TERSE["description"] and fetched["max_steps"] == 3
    assert fetched["created_at"] == created["created_at"] and fetched["updated_at"] >= created["updated_at"]
    assert merge_patch.status_code == 200, merge_patch.text
    assert merge_patch.json()["max_steps"] is None and merge_patch.json()["model"] == "m-other"


async def test_invalid_assistants_are_422_naming_the_field(api_stack: APIFactory, store_url: str) -> None:
    async with api_stack(database_url=store_url) as api:
        await _create(api)
        cases = {
            "max_steps": await api.http.post("/v1/assistants", json={"name": "a", "max_steps": 0}),
            "tool_timeout_seconds": await api.http.post(
                "/v1/assistants", json={"name": "a", "tool_timeout_seconds": 0}
            ),
            "context_budget_bytes": await api.http.post(
                "/v1/assistants", json={"name": "a", "context_budget_bytes": 1}
            ),
            "name": await api.http.post("/v1/assistants", json={"name": "no spaces"}),
            "temperature": await api.http.post("/v1/assistants", json={"name": "a", "temperature": 1}),
            "approval_timeout_seconds": await api.http.patch(
                "/v1/assistants/terse", json={"approval_timeout_seconds": -1}
            ),
            "nam": await api.http.patch("/v1/assistants/terse", json={"nam": "typo"}),
        }
        unchanged = (await api.http.get("/v1/assistants/terse")).json()
        missing = await api.http.patch("/v1/assistants/nobody", json={"model": "m"})
        bad_path = await api.http.get("/v1/assistants/no%20spaces")
        listed = (await api.http.get("/v1/assistants")).json()
    for field, response in cases.items():
        assert field in _error(response, 422, "invalid_request"), (field, response.text)
    assert unchanged["approval_timeout_seconds"] is None
    _error(missing, 404, "unknown_assistant")
    assert bad_path.status_code == 422
    assert [a["name"] for a in listed["assistants"]] == ["terse"]


async def test_only_admins_change_assistants_and_any_key_reads_them(api_stack: APIFactory, store_url: str) -> None:
    async with (
        api_stack(database_url=store_url, api_keys=keys_json()) as api,
        as_key(api, "root") as admin,
        as_key(api, "alice") as runner,
        as_key(api, "carol") as approver,
    ):
        refused = [
            await runner.post("/v1/assistants", json=TERSE),
            await approver.post("/v1/assistants", json=TERSE),
        ]
        created = await admin.post("/v1/assistants", json=TERSE)
        refused += [
            await runner.patch("/v1/assistants/terse", json={"model": "m"}),
            await runner.delete("/v1/assistants/terse"),
        ]
        read = [await runner.get("/v1/assistants/terse"), await approver.get("/v1/assistants")]
        anonymous = await api.http.get("/v1/assistants")
        deleted = await admin.delete("/v1/assistants/terse")
    for response in refused:
        assert "lacks the 'admin' role" in _error(response, 403, "forbidden")
    assert created.status_code == 201 and deleted.status_code == 204
    assert [response.status_code for response in read] == [200, 200]
    assert read[0].json()["model"] == TERSE["model"]
    _error(anonymous, 401, "unauthorized")


async def test_a_run_takes_the_assistants_model_instructions_and_limits(
    api_stack: APIFactory, llm: ScriptedLLM, store_url: str
) -> None:
    llm.script("m-asst-terse", Reply(content="one line"))
    async with api_stack(database_url=store_url) as api:
        await _create(api)
        run = await _run(api, {"input": "tell me everything", "assistant": "terse"})
    assert run["model"] == "m-asst-terse" and run["max_steps"] == 3 and run["output"] == "one line"
    [sent] = llm.requests_for("m-asst-terse")
    assert sent["messages"] == [
        {"role": "system", "content": "Answer in one line."},
        {"role": "user", "content": "tell me everything"},
    ]


async def test_what_a_run_sets_itself_wins_over_the_assistant(
    api_stack: APIFactory, llm: ScriptedLLM, store_url: str
) -> None:
    llm.script("m-asst-own", Reply(content="mine"))
    async with api_stack(database_url=store_url) as api:
        await _create(api)
        run = await _run(
            api,
            {"input": "hi", "assistant": "terse", "model": "m-asst-own", "max_steps": 8, "instructions": "Be kind."},
        )
    # max_steps 8 is the default, sent on purpose: a field the body sets wins even at its default.
    assert run["model"] == "m-asst-own" and run["max_steps"] == 8
    assert llm.requests_for("m-asst-terse") == []
    assert llm.requests_for("m-asst-own")[0]["messages"][0] == {"role": "system", "content": "Be kind."}


async def test_the_filled_in_run_is_checked_like_any_other(api_stack: APIFactory, store_url: str) -> None:
    async with api_stack(database_url=store_url) as api:
        await _create(api, {"name": "ghostly", "mcp_servers": ["ghost"]})
        refused = await api.http.post("/v1/orchestrations", json={"input": "hi", "assistant": "ghostly"})
    assert "ghost" in _error(refused, 422, "unknown_mcp_server")


async def test_an_idempotent_retry_finds_its_run_after_the_assistant_changed(
    api_stack: APIFactory, llm: ScriptedLLM, store_url: str
) -> None:
    llm.script("m-asst-terse", Reply(content="once"))
    body = {"input": "once", "assistant": "terse"}
    async with api_stack(database_url=store_url) as api:
        await _create(api)
        first = await api.http.post("/v1/orchestrations", json=body, headers={"Idempotency-Key": "k1"})
        await api.http.patch("/v1/assistants/terse", json={"model": "m-asst-changed"})
        retry = await api.http.post("/v1/orchestrations", json=body, headers={"Idempotency-Key": "k1"})
        other = await api.http.post(
            "/v1/orchestrations", json=body | {"input": "twice"}, headers={"Idempotency-Key": "k1"}
        )
        run = await api.wait_for(first.json()["id"], lambda s: s["status"] == "completed")
    assert first.status_code == 202 and retry.status_code == 200, retry.text
    assert retry.json()["id"] == first.json()["id"] and run["model"] == "m-asst-terse"
    _error(other, 422, "idempotency_key_reused")


async def test_a_chat_completion_takes_the_assistant_when_model_is_its_name(
    api_stack: APIFactory, llm: ScriptedLLM, store_url: str
) -> None:
    llm.script("m-asst-terse", Reply(content="chatted"))
    llm.script("m-asst-chat-own", Reply(content="own model"))
    messages = [{"role": "user", "content": "hello"}]
    async with api_stack(database_url=store_url) as api:
        await _create(api)
        by_name = await api.http.post(
            "/v1/chat/completions", json={"model": "terse", "assistant": "terse", "messages": messages}
        )
        own = await api.http.post(
            "/v1/chat/completions", json={"model": "m-asst-chat-own", "assistant": "terse", "messages": messages}
        )
    assert by_name.status_code == 200, by_name.text
    assert by_name.json()["model"] == "m-asst-terse" and by_name.json()["choices"][0]["message"]["content"] == "chatted"
    assert llm.requests_for("m-asst-terse")[0]["messages"] == [
        {"role": "system", "content": "Answer in one line."},
        *messages,
    ]
    assert own.status_code == 200, own.text
    assert own.json()["model"] == "m-asst-chat-own"
    assert llm.requests_for("m-asst-chat-own")[0]["messages"][0]["content"] == "Answer in one line."
    run = own.json()["orchestration"]
    assert run["status"] == "completed"


async def test_an_unknown_assistant_is_422(api_stack: APIFactory, store_url: str) -> None:
    async with api_stack(database_url=store_url) as api:
        run = await api.http.post("/v1/orchestrations", json={"input": "hi", "assistant": "nobody"})
        chat = await api.http.post(
            "/v1/chat/completions",
            json={"model": "m", "assistant": "nobody", "messages": [{"role": "user", "content": "hi"}]},
        )
        bad_name = await api.http.post("/v1/orchestrations", json={"input": "hi", "assistant": "no body"})
    assert "'nobody'" in _error(run, 422, "unknown_assistant")
    assert "'nobody'" in _error(chat, 422, "unknown_assistant")
    assert "assistant" in _error(bad_name, 422, "invalid_request")


async def test_without_a_store_assistants_are_503(api_stack: APIFactory, llm: ScriptedLLM) -> None:
    llm.script("m-asst-nostore", Reply(content="fine"))
    async with api_stack() as api:
        listed = await api.http.get("/v1/assistants")
        created = await api.http.post("/v1/assistants", json=TERSE)
        run = await api.http.post("/v1/orchestrations", json={"input": "hi", "assistant": "terse"})
        plain = await _run(api, {"input": "hi", "model": "m-asst-nostore"})
    for response in (listed, created, run):
        assert "ORCH_DATABASE_URL" in _error(response, 503, "store_not_configured")
    assert plain["output"] == "fine"
