"""What the application holds for its handlers: the node, the config, the trigger store,
the OpenAPI document and the signal that ends live streams on shutdown."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reactor_jobs.config import Config
from reactor_jobs.http.ratelimit import TokenBuckets
from reactor_jobs.node import Node
from reactor_jobs.triggers.store import TriggerStore, WebhookTrigger

# Checks a webhook request and its body before it starts a run (the signature check,
# webhooks.check_signature); raise a ReactorError to refuse it. The rate limit
# (WEBHOOK_LIMITER) is checked earlier, before the body is read.
WebhookGuard = Callable[[WebhookTrigger, web.Request, bytes], Awaitable[None]]

NODE = web.AppKey("node", Node)
CONFIG = web.AppKey("config", Config)
TRIGGERS = web.AppKey("triggers", TriggerStore)
OPENAPI = web.AppKey("openapi", dict[str, Any])
SHUTDOWN = web.AppKey("shutdown", asyncio.Event)
WEBHOOK_GUARDS = web.AppKey("webhook_guards", list[WebhookGuard])
WEBHOOK_LIMITER = web.AppKey("webhook_limiter", TokenBuckets)
