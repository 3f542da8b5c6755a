"""The order domain of the quickstart bundle: a sibling module, imported relatively."""

from __future__ import annotations

from typing import Any


def is_scheduled(payload: Any) -> bool:
    """No order at all: nothing, `{}`, or only the cron slot (`{"scheduled_for": …}`). A
    payload with other fields but no orderId is a bad order, refused by `validate`."""
    return payload is None or (isinstance(payload, dict) and set(payload) <= {"scheduled_for"})


def validate(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not payload.get("orderId"):
        raise ValueError("payload needs an orderId")
    return {"id": payload["orderId"], "total": payload.get("total", 0)}


def charge(order: dict[str, Any]) -> dict[str, Any]:
    return {"charged": order["total"], "orderId": order["id"]}


def sweep(slot: str | None) -> dict[str, Any]:
    """The scheduled sweep: a shop would look here for orders left unprocessed (a webhook
    that never came) and process them; this example keeps no orders, so none are pending."""
    return {"slot": slot, "pending": 0}
