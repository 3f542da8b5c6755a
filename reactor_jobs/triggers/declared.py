"""The triggers a function.json declares for its job (`job.triggers`), as written there;
reconcile.py turns each into the TriggerSpec the triggers table holds."""

from __future__ import annotations

from typing import Literal, TypeAlias

import msgspec

CatchUp: TypeAlias = Literal["latest", "skip", "all"]


class _Declared(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    pass


class CronTrigger(_Declared, frozen=True, tag="cron", tag_field="kind"):
    # 5 fields, or 6 with seconds as the last field (croniter's convention).
    schedule: str
    timezone: str = "UTC"
    catch_up: CatchUp = "latest"


class EventTrigger(_Declared, frozen=True, tag="event", tag_field="kind"):
    topic: str


class WebhookTrigger(_Declared, frozen=True, tag="webhook", tag_field="kind"):
    # Request headers its runs keep beyond the defaults (triggers/specs.py).
    headers: list[str] | None = None


class ManualTrigger(_Declared, frozen=True, tag="manual", tag_field="kind"):
    pass


Trigger: TypeAlias = CronTrigger | EventTrigger | WebhookTrigger | ManualTrigger
