"""A first user for a fresh install, so `reactor serve` in dev mode can say how to sign in."""

from __future__ import annotations

import secrets

from reactor_jobs.auth.errors import AuthConflict
from reactor_jobs.auth.service import AuthService

DEV_ADMIN_EMAIL = "admin@localhost"
DEV_ORG = "default"


async def ensure_dev_admin(service: AuthService) -> tuple[str, str] | None:
    """With no users at all, create admin@localhost (random password) owning org `default`
    and return (email, password) to print once; else None."""
    if await service.has_users():
        return None
    password = secrets.token_urlsafe(18)
    try:
        user_id = await service.create_user(DEV_ADMIN_EMAIL, password)
    except AuthConflict:
        return None  # another process bootstrapped at the same moment
    try:
        await service.create_org(DEV_ORG, user_id)
    except AuthConflict:  # the org outlived its users; hand it to the new admin
        await service.add_member(DEV_ORG, user_id, "owner")
    return DEV_ADMIN_EMAIL, password
