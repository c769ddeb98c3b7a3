"""The published document, checked for shape so it cannot regress silently: every route of the
app is an operation, every ``{param}`` of a path is declared, every POST declares its body and
its errors, every error answer has its protocol's shape, and no ``default`` hides a status."""

from __future__ import annotations

import re
from typing import Any

import pytest
from starlette.routing import Route

from multiturn.server.app import create_app
from multiturn.server.openapi import openapi_schema
from multiturn.settings import Settings

DOC = openapi_schema()
METHODS = ("get", "post", "put", "patch", "delete")
OPERATIONS = [
    (path, method, op) for path, item in DOC["paths"].items() for method, op in item.items() if method in METHODS
]
IDS = [f"{method.upper()} {path}" for path, method, _ in OPERATIONS]
UNDOCUMENTED = {"/openapi.json"}
UPLOAD = "/api/v1/uploads/oss"
"""The one POST that is no JSON and takes no key: OSS's form post of a file, authorized by the
upload certificate's policy (``server/uploads.py``)."""


def _error_model(path: str) -> str:
    return "ErrorBody" if path.startswith("/api/") else "ErrorResponse"


def test_every_route_is_an_operation() -> None:
    app = create_app(Settings(api_keys=["sk-shape"]))
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path not in UNDOCUMENTED
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert served == {(path, method) for path, method, _ in OPERATIONS}
    assert len(OPERATIONS) == 44


def test_operation_ids_are_unique() -> None:
    ids = [op["operationId"] for _, _, op in OPERATIONS]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=IDS)
def test_path_parameters_are_declared(path: str, method: str, op: dict[str, Any]) -> None:
    declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert declared == set(re.findall(r"{(\w+)}", path))
    assert all(p["required"] for p in op.get("parameters", []) if p["in"] == "path")


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=IDS)
def test_errors_are_declared_in_the_protocol_shape(path: str, method: str, op: dict[str, Any]) -> None:
    responses = op["responses"]
    assert "default" not in responses, "a default response would hide undeclared statuses"
    assert "200" in responses
    assert "500" in responses
    if path not in ("/healthz", UPLOAD):
        assert "401" in responses
    if "{" in path:
        assert "404" in responses
    expected = {"$ref": f"#/components/schemas/{_error_model(path)}"}
    for status, answer in responses.items():
        if status != "200":
            assert answer["content"] == {"application/json": {"schema": expected}}, status
            assert "X-Request-Id" in answer["headers"]


@pytest.mark.parametrize(
    ("path", "method", "op"), [o for o in OPERATIONS if o[1] == "post"], ids=[i for i in IDS if i.startswith("POST")]
)
def test_posts_declare_a_body_and_its_errors(path: str, method: str, op: dict[str, Any]) -> None:
    body = op["requestBody"]
    if path == UPLOAD:
        assert set(body["content"]) == {"multipart/form-data"} and op["security"] == []
        assert {"400", "413", "500"} <= op["responses"].keys()
        return
    assert set(body["content"]) == {"application/json"}
    assert body["content"]["application/json"]["schema"]["$ref"].startswith("#/components/schemas/")
    assert {"400", "401", "413", "415", "500"} <= op["responses"].keys()


def test_every_reference_resolves() -> None:
    schemas = DOC["components"]["schemas"]
    refs = re.findall(r'"\$ref": "#/components/(\w+)/([^"]+)"', str(DOC).replace("'", '"'))
    assert refs
    for kind, name in refs:
        assert name in DOC["components"][kind], (kind, name)
    assert "ChatCompletionRequest" in schemas


def test_links_name_real_operations() -> None:
    ids = {op["operationId"]: (path, op) for path, _, op in OPERATIONS}
    links = [link for _, _, op in OPERATIONS for link in op["responses"]["200"].get("links", {}).values()]
    assert len(links) >= 20
    for link in links:
        path, op = ids[link["operationId"]]
        assert set(link.get("parameters", {})) == set(re.findall(r"{(\w+)}", path))
        if "requestBody" in link:
            body = DOC["components"]["schemas"][
                op["requestBody"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
            ]
            assert set(link["requestBody"]) <= set(body["properties"]), link
