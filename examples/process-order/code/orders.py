"""The order domain of the quickstart bundle: a sibling module, imported relatively."""

from __future__ import annotations

from typing import Any


def validate(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or not payload.get("orderId"):
        raise ValueError("payload needs an orderId")
    return {"id": payload["orderId"], "total": payload.get("total", 0)}


def charge(order: dict[str, Any]) -> dict[str, Any]:
    return {"charged": order["total"], "orderId": order["id"]}
