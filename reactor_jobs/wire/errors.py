"""The API's error shape, `{"error": {"code", "message"}}`: the server encodes every refusal
in it and the client decodes it into its own error classes."""

from __future__ import annotations

import msgspec


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    message: str


class ErrorResponse(msgspec.Struct, frozen=True, kw_only=True):
    error: ErrorBody
