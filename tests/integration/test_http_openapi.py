"""The OpenAPI document against the routes the app really registers, both ways, and the
error-code table against the error tree."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import reactor_jobs
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.http.console import PREFIX as CONSOLE
from reactor_jobs.http.errors import INTERNAL_CODES, STATUS
from reactor_jobs.http.keys import OPENAPI
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]


def registered(api: Api) -> set[tuple[str, str]]:
    """(method, path) of every API route; HEAD rides along with GET (add_get adds it). The
    web console's static files (/console/) are pages, not part of the API."""
    return {
        (route.method, route.resource.canonical)
        for route in api.app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        and not route.resource.canonical.startswith(CONSOLE)
    }


async def test_every_registered_route_is_documented_and_every_documented_one_served(
    api: Api,
) -> None:
    served = await api.call("GET", "/jobs/v1/openapi.json", as_=None)
    assert served.status == 200
    document = served.json
    assert document == api.app[OPENAPI]
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    routes = registered(api)
    assert routes - documented == set(), "registered but not in the OpenAPI document"
    assert documented - routes == set(), "documented but not registered"
    assert ("POST", "/jobs/v1/webhooks/{token}") in routes
    assert ("GET", "/jobs/v1/_admin/jobs/{name}/logs") in routes


async def test_operations_name_their_access_schemas_and_errors(api: Api) -> None:
    document = api.app[OPENAPI]
    schemas = document["components"]["schemas"]
    ids = []
    for path, operations in document["paths"].items():
        for method, op in operations.items():
            ids.append(op["operationId"])
            public = op["x-reactor-access"] == "public"
            assert (op["security"] == []) == public, (method, path)
            for response in op["responses"].values():
                for content in response.get("content", {}).values():
                    ref = content["schema"].get("$ref", "")
                    assert not ref or ref.rsplit("/", 1)[1] in schemas
            if not public:
                assert {"401", "403"} <= op["responses"].keys(), (method, path)
    assert len(ids) == len(set(ids)), "operationIds must be unique"
    trigger = document["paths"]["/jobs/v1/{name}/trigger"]["post"]
    assert trigger["x-reactor-access"] == "member"
    assert "Retry-After" in trigger["responses"]["429"]["headers"]
    create = document["paths"]["/jobs/v1/_admin/jobs"]["post"]
    assert create["x-reactor-access"] == "admin"
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/JobCreate"
    }
    assert schemas["JobCreate"]["required"] == ["name", "function_name"]


def test_every_error_code_of_the_tree_has_a_status_or_is_internal() -> None:
    """A new error class must be given its HTTP status (errors.STATUS) or be declared
    internal; otherwise a caller's mistake would surface as a 500."""
    for module in pkgutil.walk_packages(reactor_jobs.__path__, "reactor_jobs."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    unmapped = set()
    pending: list[type[ReactorError]] = [ReactorError]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if cls.__module__.startswith(("reactor_jobs.client.", "reactor_jobs.cli.")):
            continue  # the client's and CLI's errors are the other end of the wire
        if cls.code not in STATUS and cls.code not in INTERNAL_CODES:
            unmapped.add(f"{cls.__module__}.{cls.__qualname__} ({cls.code})")
    assert unmapped == set()
