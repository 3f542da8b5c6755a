"""What the application holds for its handlers: the node, the config, the trigger store,
the OpenAPI document and the signal that ends live streams on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reactor_jobs.config import Config
from reactor_jobs.node import Node
from reactor_jobs.triggers.store import Trigger, TriggerStore

# Checks a webhook request before it starts a run (signatures, rate limits: a later issue);
# raise a ReactorError to refuse it. The list is empty until those checks exist.
WebhookGuard = Callable[[Trigger, web.Request, bytes], Awaitable[None]]

NODE = web.AppKey("node", Node)
CONFIG = web.AppKey("config", Config)
TRIGGERS = web.AppKey("triggers", TriggerStore)
OPENAPI = web.AppKey("openapi", dict[str, Any])
SHUTDOWN = web.AppKey("shutdown", asyncio.Event)
WEBHOOK_GUARDS = web.AppKey("webhook_guards", list[WebhookGuard])
