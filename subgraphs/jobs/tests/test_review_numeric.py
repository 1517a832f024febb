"""Security review 2026-12, item 6 and FUZZ-4: numbers that graphql-core cannot coerce (NaN,
Infinity, 1e400 for a Float; 5.5 or -6.29e16 for an Int; a Float the router re-serializes as a
17-digit integer that would lose precision) are the caller's mistake: a normal GraphQL error,
never the masked "Internal server error". Raw JSON bodies through the real router.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.support.platform import RunningPlatform, gql

pytestmark = pytest.mark.asyncio(loop_scope="session")

VALIDATE = """query($input: CreateJobInput!) { validateJob(input: $input) { __typename
  ... on ValidationFailed { message field } ... on Error { message } } }"""
CREATE = """mutation($input: CreateJobInput!) { createJob(input: $input) { __typename
  ... on JobCreated { job { id } } ... on ValidationFailed { message field } ... on Error { message } } }"""

MASKED = ("Internal server error", "Unexpected error", "Traceback")


def _body(query: str, input_json: str) -> bytes:
    """A raw JSON body: `input_json` is spliced in as text (json.dumps would refuse or rewrite it)."""
    return ('{"query": ' + json.dumps(query) + ', "variables": {"input": ' + input_json + "}}").encode()


async def _post(url: str, token: str, body: bytes) -> tuple[int, str]:
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(url, content=body, headers=headers)
    return resp.status_code, resp.text


def _input(policy: str = "", step_extra: str = "") -> str:
    name = f"num-{uuid.uuid4().hex[:8]}"
    policy_part = f', "policy": {{{policy}}}' if policy else ""
    return f'{{"name": "{name}", "steps": [{{"name": "s", "command": "echo hi"{step_extra}}}]{policy_part}}}'


BAD_NUMBERS = [
    ('"retryBackoffSeconds": NaN', ""),
    ('"retryBackoffSeconds": Infinity', ""),
    ('"retryBackoffSeconds": -Infinity', ""),
    ('"retryBackoffSeconds": 1e400', ""),
    ('"retryBackoffSeconds": -6.29e16', ""),
    ('"retryBackoffSeconds": 69620167682602970', ""),
    ('"timeoutSeconds": 5.5', ""),
    ('"timeoutSeconds": -6.29e16', ""),
    ('"timeoutSeconds": 1e400', ""),
    ("", ', "timeoutSeconds": 5.5'),
    ("", ', "expectedExitCodes": [21887226, -1509553655]'),
    ("", ', "expectedExitCodes": [69620167682602970]'),
]


@pytest.mark.parametrize(("policy", "step"), BAD_NUMBERS)
@pytest.mark.parametrize("operation", ["validateJob", "createJob"])
async def test_item6_fuzz4_bad_numbers_answer_a_client_error(
    router: Any, platform: RunningPlatform, admin_token: str, operation: str, policy: str, step: str
) -> None:
    """item 6 / FUZZ-4: NaN, Infinity, 1e400, 5.5 for an Int, -6.29e16 and a 17-digit integer for a
    Float (the router re-serializes -6.29e16 as 69620167682602970, which graphql-core refuses to
    turn into a Float as it would lose precision) answer a plain GraphQL error or a typed
    ValidationFailed, never the masked "Internal server error"."""
    query = VALIDATE if operation == "validateJob" else CREATE
    status, text = await _post(router.url, admin_token, _body(query, _input(policy, step)))
    assert not any(m in text for m in MASKED), (status, text[:2000])
    body = json.loads(text)
    result = (body.get("data") or {}).get(operation)
    if result is not None:  # coerced (e.g. the router turned 1e400 into null), then range-checked
        assert result["__typename"] in ("ValidationFailed", "JobValid", "JobCreated"), body
    else:
        assert body.get("errors"), body
        message = json.dumps(body["errors"])
        assert any(w in message for w in ("cannot represent", "invalid value", "JSON", "json")), message[
            :2000
        ]


async def test_fuzz4_exit_codes_out_of_range_are_validation_failed(
    router: Any, platform: RunningPlatform, admin_token: str
) -> None:
    """FUZZ-4: 32-bit exit codes outside 0..255 answer the typed ValidationFailed on the exit codes."""
    variables = {"input": json.loads(_input("", ', "expectedExitCodes": [21887226, -1509553655]'))}
    for query, name in ((VALIDATE, "validateJob"), (CREATE, "createJob")):
        body = await gql(router.url, query, variables, token=admin_token)
        result = body["data"][name]
        assert result["__typename"] in ("ValidationFailed", "JobValid", "JobCreated"), body
        assert result["field"].endswith("expectedExitCodes"), body


async def test_item6_backoff_as_the_router_sends_it_is_not_masked_at_the_subgraph(
    platform: RunningPlatform, admin_token: str
) -> None:
    """item 6 / FUZZ-4: the subgraph itself answers a normal error for the integer form of a Float."""
    body = _body(VALIDATE, _input('"retryBackoffSeconds": 69620167682602970'))
    status, text = await _post(platform.url("jobs"), admin_token, body)
    assert not any(m in text for m in MASKED), (status, text[:2000])
    assert "would lose precision" in text, text[:2000]
