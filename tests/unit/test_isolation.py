"""What isolation a worker can give job code, and when it may run several orgs' code."""

from __future__ import annotations

import os
import shutil

import pytest

from reactor_jobs.config import HostSettings
from reactor_jobs.engine import hosts
from reactor_jobs.engine.hosts import detect_isolation


def test_namespaces_allow_several_orgs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/bwrap")
    isolation = detect_isolation(HostSettings())
    assert isolation.multi_tenant and isolation.bwrap == "/usr/bin/bwrap"


@pytest.mark.parametrize("single_tenant", [False, True])
def test_without_bubblewrap_one_org_unless_configured(
    monkeypatch: pytest.MonkeyPatch, single_tenant: bool
) -> None:
    """Hosts of every org would share one user: apart from the engine, not from each other."""
    monkeypatch.setattr(shutil, "which", lambda name: None)
    isolation = detect_isolation(HostSettings(single_tenant=single_tenant))
    assert isolation.bwrap is None
    assert isolation.multi_tenant is single_tenant
    assert ("install bubblewrap" in isolation.summary) is not single_tenant
    if os.geteuid() == 0:
        assert isolation.user == "reactor-fn"


def test_a_required_sandbox_that_is_missing_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(hosts.HostUnavailable, match="bwrap is not installed"):
        detect_isolation(HostSettings(sandbox="bwrap"))
