"""Where an org's data lives: its schema and its role, derived from the org's name by a
mapping that is safe as a Postgres identifier and cannot collide between two orgs.

Roles are cluster-wide while schemas are per database, so a role name also carries a short
hash of the database's name: two databases on one server never share an org's role."""

from __future__ import annotations

import hashlib
import re

_CLEAN = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_NOT_IDENT = re.compile(r"[^a-z0-9_]+")
MAX_IDENT = 63


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:n]


def safe_part(org: str) -> str:
    """`acme` for a clean org name; otherwise a sanitised prefix and a hash of the name."""
    if _CLEAN.match(org):
        return org
    prefix = _NOT_IDENT.sub("_", org.lower()).strip("_")[:30] or "x"
    return f"{prefix}_{_digest(org)}"


def org_schema(org: str) -> str:
    """The org's schema: `org_acme`."""
    return f"org_{safe_part(org)}"


def org_role(org: str, database: str) -> str:
    """The org's role on the cluster: `rjd_<database hash>_acme`."""
    return f"rjd_{_digest(database, 6)}_{safe_part(org)}"[:MAX_IDENT]


def quote_ident(name: str) -> str:
    """A Postgres identifier, double-quoted (names come from the catalog, never raw input)."""
    if "\x00" in name:
        raise ValueError("an identifier cannot hold NUL")
    return '"' + name.replace('"', '""') + '"'
