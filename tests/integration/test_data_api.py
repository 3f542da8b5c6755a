"""The Data API over HTTP (/data/v1/): PostgREST's grammar on each org's own tables, the
API's error shape, admin-only SQL, and isolation between orgs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from tests.cli_runner import owner_env, run_cli
from tests.data_fixtures import drop_data_roles
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api", "drop_data_roles"]

SCHEMA = """
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    status text NOT NULL DEFAULT 'new',
    total numeric(10, 2),
    note text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE FUNCTION paid_total(min numeric) RETURNS numeric LANGUAGE sql AS
  $$ SELECT coalesce(sum(total), 0) FROM orders WHERE status = 'paid' AND total >= min $$;
CREATE FUNCTION by_status(s text) RETURNS SETOF orders LANGUAGE sql AS
  $$ SELECT * FROM orders WHERE status = s ORDER BY id $$;
"""
ROWS = [
    {"id": 1, "status": "paid", "total": 10, "note": "a"},
    {"id": 2, "status": "paid", "total": 25.5, "note": None},
    {"id": 3, "status": "new", "total": 7, "note": "c, d"},
    {"id": 4, "status": "void", "total": None, "note": "d"},
]


@pytest.fixture(autouse=True)
async def _roles(drop_data_roles: None) -> AsyncIterator[None]:
    yield


async def setup(api: Api) -> None:
    made = await api.call("POST", "/data/v1/_sql", as_="admin", json={"sql": SCHEMA})
    assert made.status == 200, made.text
    assert made.json["tables"] == ["orders"]
    inserted = await api.call("POST", "/data/v1/orders", as_="member", json=ROWS)
    assert inserted.status == 201, inserted.text


async def ids(api: Api, query: str, as_: str = "member") -> list[int]:
    reply = await api.call("GET", f"/data/v1/orders?select=id&{query}", as_=as_)
    assert reply.status == 200, reply.text
    return [r["id"] for r in reply.json]


async def test_select_filters_order_and_ranges(api: Api) -> None:
    await setup(api)
    assert await ids(api, "status=eq.paid&order=id") == [1, 2]
    assert await ids(api, "status=neq.paid&order=id.desc") == [4, 3]
    assert await ids(api, "total=gt.7&order=id") == [1, 2]
    assert await ids(api, "total=gte.7&total=lte.10&order=id") == [1, 3]
    assert await ids(api, "total=lt.10") == [3]
    assert await ids(api, "note=like.*d*&order=id") == [3, 4]
    assert await ids(api, "status=ilike.PA*&order=id") == [1, 2]
    assert await ids(api, "id=in.(1,3,9)&order=id") == [1, 3]
    assert await ids(api, 'note=in.("c, d",a)&order=id') == [1, 3]
    assert await ids(api, "total=is.null") == [4]
    assert await ids(api, "total=not.is.null&order=id") == [1, 2, 3]
    assert await ids(api, "id=not.in.(1,2)&order=id") == [3, 4]
    assert await ids(api, "or=(id.eq.1,total.gt.20)&order=id") == [1, 2]
    assert await ids(api, "or=(id.eq.4,and(status.eq.paid,total.lt.20))&order=id") == [1, 4]
    assert await ids(api, "order=total.desc.nullsfirst") == [4, 2, 1, 3]
    assert await ids(api, "order=total.asc.nullslast,id") == [3, 1, 2, 4]
    assert await ids(api, "order=id&limit=2&offset=1") == [2, 3]
    renamed = await api.call("GET", "/data/v1/orders?select=key:id,status&id=eq.2")
    assert renamed.json == [{"key": 2, "status": "paid"}]
    counted = await api.call(
        "GET", "/data/v1/orders?select=id&order=id&limit=2", headers={"Prefer": "count=exact"}
    )
    assert counted.headers["Content-Range"] == "0-1/4"
    plain = await api.call("GET", "/data/v1/orders?id=eq.99")
    assert plain.json == [] and plain.headers["Content-Range"] == "*/*"
    whole = await api.call("GET", "/data/v1/orders?id=eq.1")
    assert whole.json[0]["total"] == 10 and set(whole.json[0]) == {
        "id", "status", "total", "note", "created_at",
    }  # fmt: skip


async def test_writes_upsert_update_delete_and_rpc(api: Api) -> None:
    await setup(api)
    prefer = {"Prefer": "return=representation"}
    one = await api.call(
        "POST", "/data/v1/orders?select=id,status", json={"id": 5, "total": 1}, headers=prefer
    )
    assert (one.status, one.json) == (201, [{"id": 5, "status": "new"}])
    dup = await api.call("POST", "/data/v1/orders", json={"id": 5})
    assert (dup.status, dup.error_code) == (409, "conflict")
    merged = await api.call(
        "POST", "/data/v1/orders?on_conflict=id&select=id,status,total",
        json=[{"id": 5, "status": "paid", "total": 3}, {"id": 6, "status": "paid", "total": 4}],
        headers={"Prefer": "return=representation,resolution=merge-duplicates"},
    )  # fmt: skip
    assert merged.status == 201, merged.text
    assert merged.json == [
        {"id": 5, "status": "paid", "total": 3},
        {"id": 6, "status": "paid", "total": 4},
    ]
    patched = await api.call(
        "PATCH", "/data/v1/orders?status=eq.paid&total=lt.5&select=id",
        json={"status": "shipped"}, headers=prefer,
    )  # fmt: skip
    assert patched.status == 200 and sorted(r["id"] for r in patched.json) == [5, 6]
    quiet = await api.call("PATCH", "/data/v1/orders?id=eq.1", json={"note": "z"})
    assert quiet.status == 204
    gone = await api.call("DELETE", "/data/v1/orders?status=eq.shipped", headers=prefer)
    assert gone.status == 200 and len(gone.json) == 2
    assert await ids(api, "order=id") == [1, 2, 3, 4]
    total = await api.call("POST", "/data/v1/rpc/paid_total", json={"min": 10})
    assert (total.status, total.json) == (200, 35.5)
    rows = await api.call("POST", "/data/v1/rpc/by_status", json={"s": "paid"})
    assert [r["id"] for r in rows.json] == [1, 2]


async def test_bad_input_is_refused_in_the_error_shape(api: Api) -> None:
    await setup(api)
    before = await ids(api, "order=id")
    cases = [
        ("GET", "/data/v1/nosuch", None, 404, "nosuch"),
        ("GET", "/data/v1/orders?select=id,nosuch", None, 400, "nosuch"),
        ("GET", "/data/v1/orders?nosuch=eq.1", None, 400, "nosuch"),
        ("GET", "/data/v1/orders?id=eq.abc", None, 400, "bigint"),
        ("GET", "/data/v1/orders?id=zz.1", None, 400, "op.value"),
        ("GET", "/data/v1/orders?order=nosuch.desc", None, 400, "nosuch"),
        ("POST", "/data/v1/orders", {"id": "x"}, 400, "bigint"),
        ("POST", "/data/v1/orders", {"id": 9, "nosuch": 1}, 400, "nosuch"),
        ("DELETE", "/data/v1/orders", None, 400, "filter"),
        ("PATCH", "/data/v1/orders", {"note": "x"}, 400, "filter"),
        ("POST", "/data/v1/rpc/nosuch", {}, 404, "nosuch"),
        ("POST", "/data/v1/rpc/paid_total", {"nosuch": 1}, 400, "nosuch"),
    ]
    for method, path, body, status, named in cases:
        reply = await api.call(method, path, json=body)
        assert reply.status == status, (path, reply.text)
        assert set(reply.json) == {"error"} and set(reply.json["error"]) == {"code", "message"}
        assert named in reply.json["error"]["message"], (path, reply.text)
    big = await api.call("POST", "/data/v1/orders", json=[{"id": 100 + n, "note": "x" * 1000}
                                                          for n in range(100)])  # fmt: skip
    assert (big.status, big.error_code) == (413, "payload_too_large")
    assert await ids(api, "order=id") == before


async def test_sql_is_for_admins_and_tables_are_listed(api: Api) -> None:
    refused = await api.call("POST", "/data/v1/_sql", as_="member", json={"sql": SCHEMA})
    assert (refused.status, refused.error_code) == (403, "forbidden")
    await setup(api)
    listed = await api.call("GET", "/data/v1/_tables", as_="member")
    assert listed.status == 200
    (orders,) = listed.json["tables"]
    assert orders["name"] == "orders" and orders["primary_key"] == ["id"]
    assert orders["columns"]["total"] == "numeric(10,2)"
    bad = await api.call("POST", "/data/v1/_sql", as_="admin", json={"sql": "CREATE TABLE ("})
    assert (bad.status, bad.error_code) == (400, "bad_request")


async def test_one_org_cannot_reach_another_orgs_tables_or_the_engine(api: Api) -> None:
    await setup(api)
    # globex (the outsider) sees no orders table of its own, and acme's is not reachable.
    missing = await api.call("GET", "/data/v1/orders", as_="outsider")
    assert (missing.status, missing.error_code) == (404, "not_found")
    attempts = [
        "SELECT * FROM org_acme.orders",
        "CREATE VIEW stolen AS SELECT * FROM org_acme.orders",
        "INSERT INTO org_acme.orders (id) VALUES (77)",
        "CREATE VIEW runs AS SELECT * FROM _reactor_jobs.runs",
        "SELECT * FROM _reactor_jobs.data_roles",
        "SELECT * FROM _reactor_jobs.data_keys",
        "SET ROLE postgres",
        "SET SESSION AUTHORIZATION postgres",
        "CREATE FUNCTION f() RETURNS int SECURITY DEFINER LANGUAGE sql AS"
        " $$ SELECT count(*)::int FROM org_acme.orders $$; SELECT f()",
        "SELECT _reactor_data.checkpoint('{}', '\\x00', '\\x00')",
    ]
    for sql in attempts:
        reply = await api.call("POST", "/data/v1/_sql", as_="outsider", json={"sql": sql})
        assert reply.status in (400, 403), (sql, reply.text)
        assert reply.json["error"]["code"] in ("forbidden", "bad_request"), (sql, reply.text)
    assert await ids(api, "order=id") == [1, 2, 3, 4]
    # The org's own SQL runs as its own role, which is not the engine's.
    who = "CREATE TABLE whoami AS SELECT current_user AS u, session_user AS s"
    await api.call("POST", "/data/v1/_sql", as_="outsider", json={"sql": who})
    me = (await api.call("GET", "/data/v1/whoami", as_="outsider")).json[0]
    assert me["u"] == me["s"] and me["u"].endswith("_globex")
    assert not await api.node.pool.fetchval(
        "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = $1", me["u"]
    )


async def test_the_data_commands(api: Api, tmp_path: Path) -> None:
    schema = tmp_path / "schema.sql"
    schema.write_text(SCHEMA)
    env = owner_env(api, tmp_path)
    code, out, err = await run_cli("data", "sql", "--file", str(schema), cwd=tmp_path, env=env)
    assert (code, err, out) == (0, "", "ok; tables: orders\n")
    await api.call("POST", "/data/v1/orders", json=ROWS)
    code, out, _ = await run_cli("data", "tables", cwd=tmp_path, env=env)
    assert code == 0 and "orders: table (primary key id)" in out and "total  numeric(10,2)" in out
    code, out, _ = await run_cli(
        "data", "query", "orders", "--select", "id,status", "--eq", "status=paid",
        "--order", "id", cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0 and out.splitlines() == ["id  status", "--  ------", "1   paid", "2   paid"]
    code, out, _ = await run_cli(
        "data", "query", "orders", "--select", "id", "--filter", "total=gt.20", "--json",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert code == 0 and msgspec.json.decode(out) == [{"id": 2}]
    code, _, err = await run_cli("data", "query", "nosuch", cwd=tmp_path, env=env)
    assert code == 1 and "nosuch" in err


ITEMS = """
CREATE TABLE items (k text PRIMARY KEY, n integer, done boolean, tags jsonb);
CREATE FUNCTION bump() RETURNS void LANGUAGE sql AS $$ UPDATE items SET n = n + 1 $$;
"""


async def keys(api: Api, query: str) -> list[str]:
    reply = await api.call("GET", f"/data/v1/items?select=k&order=k&{query}")
    assert reply.status == 200, reply.text
    return [r["k"] for r in reply.json]


async def test_the_rest_of_the_grammar(api: Api) -> None:
    made = await api.call("POST", "/data/v1/_sql", as_="admin", json={"sql": ITEMS})
    assert made.status == 200, made.text
    rows = [
        {"k": "a", "n": 1, "done": True, "tags": {"x": [1, 2]}},
        {"k": "b", "n": 2, "done": False, "tags": None},
        {"k": "c", "n": 3, "done": None},
    ]
    quiet = await api.call("POST", "/data/v1/items", json=rows)  # return=minimal: no body
    assert (quiet.status, quiet.text, quiet.headers["Content-Range"]) == (201, "", "*/3")
    assert await keys(api, "and=(n.gt.1,n.lt.5)") == ["b", "c"]
    assert await keys(api, "not.or=(k.eq.a,k.eq.b)") == ["c"]
    assert await keys(api, "not.and=(n.gte.2,done.is.false)") == ["a", "c"]
    assert await keys(api, "done=is.true") == ["a"]
    assert await keys(api, "done=is.false") == ["b"]
    assert await keys(api, "done=not.is.null&n=neq.1") == ["b"]
    assert await keys(api, "offset=1") == ["b", "c"]
    page = await api.call(
        "GET", "/data/v1/items?select=k&order=k&offset=1&limit=1",
        headers={"Prefer": "count=exact"},
    )  # fmt: skip
    assert (page.json, page.headers["Content-Range"]) == ([{"k": "b"}], "1-1/3")
    whole = await api.call("GET", "/data/v1/items?k=eq.a&select=k,tags")
    assert whole.json == [{"k": "a", "tags": {"x": [1, 2]}}]  # jsonb comes back as JSON
    # ignore-duplicates keeps the row that is there and inserts the new one
    kept = await api.call(
        "POST", "/data/v1/items?select=k,n", json=[{"k": "a", "n": 100}, {"k": "z", "n": 26}],
        headers={"Prefer": "return=representation,resolution=ignore-duplicates"},
    )  # fmt: skip
    assert (kept.status, kept.json) == (201, [{"k": "z", "n": 26}])
    assert (await api.call("GET", "/data/v1/items?k=eq.a&select=n")).json == [{"n": 1}]
    # a void function: null, and its write happened
    bumped = await api.call("POST", "/data/v1/rpc/bump")
    assert (bumped.status, bumped.json) == (200, None)
    assert (await api.call("GET", "/data/v1/items?k=eq.z&select=n")).json == [{"n": 27}]
    # PostgREST's exact count on a write's reply
    deleted = await api.call("DELETE", "/data/v1/items?k=eq.z")
    assert (deleted.status, deleted.headers["Content-Range"]) == (204, "*/1")
    cases = [
        ("GET", "/data/v1/items?n=in.(1,x)", None, 400, "integer"),
        ("GET", "/data/v1/items?done=is.maybe", None, 400, "is takes"),
        ("GET", "/data/v1/items?limit=-1", None, 400, "limit"),
        ("GET", "/data/v1/items?or=(k.eq.a", None, 400, "parentheses"),
        ("GET", "/data/v1/items?select=*,k", None, 400, "*"),
        ("GET", "/data/v1/items?order=k.sideways", None, 400, "sideways"),
        ("PATCH", "/data/v1/items?k=eq.a", {"n": "many"}, 400, "integer"),
        ("PATCH", "/data/v1/items?k=eq.a", [{"n": 1}], 400, "object"),
        ("POST", "/data/v1/items", [], 400, "non-empty"),
        ("POST", "/data/v1/items?on_conflict=nosuch", {"k": "q"}, 400, "nosuch"),
        ("POST", "/data/v1/rpc/bump", [1], 400, "named arguments"),
    ]
    for method, path, body, status, named in cases:
        reply = await api.call(method, path, json=body)
        assert reply.status == status, (method, path, reply.text)
        assert set(reply.json) == {"error"} and set(reply.json["error"]) == {"code", "message"}
        assert named in reply.json["error"]["message"], (path, reply.text)
    raw = await api.call("POST", "/data/v1/items", data=b'{"k": ', headers={})
    assert (raw.status, raw.error_code) == (400, "bad_request"), raw.text
    assert "not valid JSON" in raw.json["error"]["message"]
    assert await keys(api, "") == ["a", "b", "c"]  # nothing refused changed a row


async def test_session_state_left_by_an_orgs_sql_does_not_reach_later_requests(api: Api) -> None:
    await setup(api)
    for sql in ("SET default_transaction_read_only = on", "SET TIME ZONE 'Asia/Tokyo'"):
        done = await api.call("POST", "/data/v1/_sql", as_="admin", json={"sql": sql})
        assert done.status == 200, done.text
    for n in range(6):  # more requests than the org's pool has connections
        wrote = await api.call("POST", "/data/v1/orders", json={"id": 50 + n})
        assert wrote.status == 201, wrote.text
    zone = "CREATE TABLE tz AS SELECT current_setting('TimeZone') AS z"
    assert (await api.call("POST", "/data/v1/_sql", as_="admin", json={"sql": zone})).status == 200
    assert (await api.call("GET", "/data/v1/tz")).json != [{"z": "Asia/Tokyo"}]
