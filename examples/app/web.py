"""An aiohttp route that starts a durable job and answers at once.

python web.py            (from this folder; REACTOR_DATABASE_URL set)
curl -X POST localhost:8000/orders -d '{"orderId": "ord_1"}'
"""

from __future__ import annotations

from aiohttp import web
from jobs import app


async def create_order(request: web.Request) -> web.Response:
    body = await request.json()
    run_id = await app.trigger("process-order", body, idempotency_key=body["orderId"])
    return web.json_response({"run_id": run_id}, status=202)


async def lifecycle(_web_app: web.Application):  # type: ignore[no-untyped-def]
    async with app:  # one engine per process, closed with the web app
        yield


def make_app() -> web.Application:
    web_app = web.Application()
    web_app.router.add_post("/orders", create_order)
    web_app.cleanup_ctx.append(lifecycle)
    return web_app


if __name__ == "__main__":
    web.run_app(make_app(), port=8000)
