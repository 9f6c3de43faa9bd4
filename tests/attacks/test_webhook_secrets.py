"""Attack: read a run's capability webhook URL (a secret in its query string or userinfo)
from the worker's logs or from the errors Temporal records for failed deliveries."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.webhooks import WebhookActivities
from workflows.activity_io import WebhookEvent

SECRET = "capability-token-8f3a"
URLS = [
    f"https://hooks.example:8443/notify/run?token={SECRET}",
    f"https://bot:{SECRET}@hooks.example:8443/notify/run",
]


def _event(url: str) -> WebhookEvent:
    return WebhookEvent(
        url=url, event_id="evt_1", event_type="orchestration.completed", timestamp=datetime.now(UTC), data={}
    )


def _answering(answer: int | None) -> httpx.MockTransport:
    """A receiver that answers `answer`, or cannot be reached when it is None."""

    def handle(request: httpx.Request) -> httpx.Response:
        if answer is None:
            raise httpx.ConnectError("connection refused", request=request)
        return httpx.Response(answer)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize("url", URLS, ids=["in-query", "in-userinfo"])
@pytest.mark.parametrize("answer", [503, None], ids=["answers-503", "unreachable"])
async def test_a_failed_delivery_names_the_receiver_without_its_secret(
    url: str, answer: int | None, caplog: pytest.LogCaptureFixture
) -> None:
    async with httpx.AsyncClient(transport=_answering(answer)) as http:
        activities = WebhookActivities(http, default_url=None, secret="signing-secret")
        with pytest.raises(ApplicationError) as failure:
            await ActivityEnvironment().run(activities.deliver_webhook, _event(url))
    assert "https://hooks.example:8443/notify/run" in str(failure.value), "the error still says where"
    assert SECRET not in str(failure.value)
    assert SECRET not in caplog.text


@pytest.mark.parametrize("url", URLS, ids=["in-query", "in-userinfo"])
async def test_a_delivery_is_logged_without_the_secret(url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with httpx.AsyncClient(transport=_answering(204)) as http:
        activities = WebhookActivities(http, default_url=None, secret="signing-secret")
        await ActivityEnvironment().run(activities.deliver_webhook, _event(url))
    assert "delivered to https://hooks.example:8443/notify/run" in caplog.text
    assert "HTTP Request: POST https://hooks.example:8443/notify/run" in caplog.text, "httpx's own line"
    assert SECRET not in caplog.text
