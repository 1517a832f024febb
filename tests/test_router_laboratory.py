"""Issue 15, newcomer touches: the router's Laboratory page (`GET /graphql` from a browser) opens with
the README's "First five operations" saved in a collection (router/laboratory.ts), and each of them
is valid against the schema the router serves, variables included."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import (
    FieldNode,
    GraphQLSchema,
    OperationDefinitionNode,
    build_client_schema,
    get_introspection_query,
    parse,
    validate,
)
from graphql.execution.values import get_variable_values

pytestmark = pytest.mark.asyncio(loop_scope="session")

README = Path(__file__).resolve().parents[1] / "README.md"
RENDER_CALL = re.compile(
    r"HiveLaboratory\.renderLaboratory\(\s*window\.document\.querySelector\('#root'\),\s*(\{.*\}),\s*\);",
    re.S,
)


def readme_root_fields() -> list[str]:
    """The root field of each operation in the README's "First five operations" block."""
    section = README.read_text().split("## First five operations", 1)[1]
    block = section.split("```graphql", 1)[1].split("```", 1)[0]
    return re.findall(r"^(?:mutation|subscription|query)\s*\{\s*(\w+)", block, re.M)


async def laboratory_props(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.get(url, headers={"accept": "text/html"})
    assert resp.status_code == 200, resp.text[:500]
    assert resp.headers["content-type"].startswith("text/html")
    found = RENDER_CALL.search(resp.text)
    assert found, "the page does not call HiveLaboratory.renderLaboratory(root, {...})"
    return json.loads(found.group(1))


async def served_schema(url: str) -> GraphQLSchema:
    async with httpx.AsyncClient(timeout=30) as http:
        resp = await http.post(url, json={"query": get_introspection_query()})
    body = resp.json()
    assert "errors" not in body, body
    return build_client_schema(body["data"])


def root_field(operation: OperationDefinitionNode) -> str:
    (selection,) = operation.selection_set.selections
    assert isinstance(selection, FieldNode)
    return selection.name.value


async def test_laboratory_opens_with_the_readme_first_five_operations(router: Any) -> None:
    props = await laboratory_props(router.url)
    (collection,) = props["defaultCollections"]
    operations = collection["operations"]
    schema = await served_schema(router.url)

    served_fields = []
    for op in operations:
        doc = parse(op["query"])
        assert not validate(schema, doc), (op["name"], validate(schema, doc))
        (definition,) = doc.definitions
        assert isinstance(definition, OperationDefinitionNode)
        coerced = get_variable_values(
            schema, definition.variable_definitions or [], json.loads(op["variables"])
        )
        assert not isinstance(coerced, list), (op["name"], coerced)  # a list is the coercion errors
        headers = json.loads(op["headers"])
        field = root_field(definition)
        # Every operation after login carries the Authorization header to fill in.
        assert ("Authorization" in headers) == (field != "login"), (op["name"], headers)
        served_fields.append(field)

    # The same operations, in the same order, as the README (login first).
    expected = readme_root_fields()
    assert expected[:5] == ["login", "createTarget", "createJob", "runJob", "executionEvents"], expected
    assert served_fields == expected
