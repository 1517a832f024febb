"""Issue 15, newcomer touches (review item 6): a caller's mistake sent to a subgraph - a malformed
query, an unknown field, a variable that does not coerce, a ValidationFailed domain answer - is
logged as at most one line, never with a traceback (ClientErrorsQuietSchema and the error masking in
opsconductor_shared.errors). The subgraphs run in this process, so their log records are captured
here: stdlib records (Strawberry logs errors through `strawberry.execution`) and structlog events."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import structlog

from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

CREATE_KEY = """mutation($days: Int!) { createApiKey(name: "log-check", permissions: ["targets:read"],
  expiresInDays: $days) { __typename ... on ValidationFailed { message field } } }"""

# name -> (query, variables, one "invalid request" line expected)
CASES: dict[str, tuple[str, dict[str, Any], bool]] = {
    "malformed query": ("query { me { id ", {}, True),
    "unknown field": ("query { noSuchField }", {}, True),
    "variable that does not coerce": (CREATE_KEY, {"days": 5.5}, True),
    "ValidationFailed domain answer": (CREATE_KEY, {"days": 0}, False),
}


# The HTTP client and uvicorn's access log (one line per request, silenced below WARNING by
# configure_logging under `make dev`) say nothing about the error.
NOT_ABOUT_THE_ERROR = ("httpx", "httpcore", "uvicorn.access")


@pytest.mark.parametrize("case", list(CASES))
async def test_a_client_error_is_one_log_line_without_traceback(
    case: str, platform: RunningPlatform, admin_token: str, caplog: pytest.LogCaptureFixture
) -> None:
    query, variables, logs_invalid_request = CASES[case]
    caplog.set_level(logging.DEBUG)
    with structlog.testing.capture_logs() as events:
        body = await gql(platform.url("auth"), query, variables, token=admin_token)

    if case == "ValidationFailed domain answer":
        assert body["data"]["createApiKey"]["__typename"] == "ValidationFailed", body
    else:
        assert body.get("errors"), body
        assert "Internal server error" not in str(body), body

    records = [
        r for r in caplog.records if r.levelno >= logging.INFO and not r.name.startswith(NOT_ABOUT_THE_ERROR)
    ]
    # Nothing with a traceback, in either logging system.
    assert not [r for r in records if r.exc_info or r.exc_text], [r.getMessage() for r in records]
    assert "Traceback" not in caplog.text
    assert not [e for e in events if e.get("exc_info")], events
    # At most one line about the request: the "invalid request" line for graphql-core's own errors.
    lines = [r.getMessage() for r in records] + [
        str(e.get("event")) for e in events if e.get("log_level") != "debug"
    ]
    assert len(lines) <= 1, lines
    if logs_invalid_request:
        assert lines and "invalid request" in lines[0], lines
