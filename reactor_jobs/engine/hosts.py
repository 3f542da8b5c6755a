"""Function hosts, the worker's side: start, feed, watch and kill the processes that run job
code (docs/host-protocol.md).

One host per (org, runtime) per worker process, shared by that org's attempts; code of two
orgs never shares a process. A host runs as an unprivileged user, in a folder of its own,
with only REACTOR_FN_* in its environment and resource limits; under bubblewrap it also gets
its own mount, PID and IPC namespaces and sees nothing of the machine but the system's
programs and its own folder. With `[jobs.functions] url` set, workers connect to a remote
host service instead of starting local hosts.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import importlib
import logging
import os
import pwd
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msgspec

from reactor_jobs.config import HostSettings
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.hosts import protocol

log = logging.getLogger("reactor_jobs.hosts")

_SETPRIV = "/usr/bin/setpriv"
STOP_GRACE_S = 1.0
_DIED = "_died"
_FINISHED_KEPT = 4096


class HostUnavailable(ReactorError):
    """No function host can run this code here."""

    code = "host_unavailable"


class Isolation(msgspec.Struct, frozen=True, kw_only=True):
    """What this machine lets a worker do to keep job code apart from it and from other orgs."""

    user: str | None  # the user hosts run as; None: the worker's own
    bwrap: str | None  # the bubblewrap binary used, if any
    multi_tenant: bool  # code of several orgs may run here
    summary: str


def detect_isolation(settings: HostSettings) -> Isolation:
    bwrap = None
    if settings.sandbox in ("auto", "bwrap"):
        bwrap = shutil.which("bwrap")
        if bwrap is None and settings.sandbox == "bwrap":
            raise HostUnavailable("[jobs.functions] sandbox = 'bwrap', but bwrap is not installed")
    user = settings.user if os.geteuid() == 0 and settings.user else None
    if settings.url:
        return Isolation(user=None, bwrap=None, multi_tenant=True, summary="remote host service")
    parts = [f"user {user}" if user else "the worker's own user (not root)"]
    parts.append("bubblewrap namespaces" if bwrap else "no namespaces (bubblewrap not found)")
    if user is None and bwrap is None:
        summary = "none: job code runs as the worker's user; " + (
            "single-tenant by configuration"
            if settings.single_tenant
            else "code of only one org is run (set single_tenant to allow more)"
        )
        return Isolation(
            user=None, bwrap=None, multi_tenant=settings.single_tenant, summary=summary
        )
    if bwrap is None:
        # One unprivileged user for every org's hosts: apart from the engine, but not from
        # each other (each could read the others' bundles). Several orgs need namespaces.
        parts.append(
            "several orgs' code allowed by single_tenant"
            if settings.single_tenant
            else "code of only one org is run (install bubblewrap, or set single_tenant)"
        )
        return Isolation(
            user=user, bwrap=None, multi_tenant=settings.single_tenant, summary=", ".join(parts)
        )
    return Isolation(user=user, bwrap=bwrap, multi_tenant=True, summary=", ".join(parts))


def _ensure_user(name: str) -> tuple[int, int]:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )  # fmt: skip
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


class HostDied(Exception):
    """The host process ended, or broke the protocol, while attempts were running on it."""

    def __init__(self, reason: str, attempts: int, culprit: str | None = None) -> None:
        super().__init__(reason)
        self.reason, self.attempts, self.culprit = reason, attempts, culprit


class Channel:
    """One attempt's conversation with its host."""

    def __init__(self, host: Host, attempt_id: str) -> None:
        self.host, self.id = host, attempt_id
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    def send(self, message: dict[str, Any]) -> None:
        self.host.send({**message, "id": self.id})

    async def receive(self) -> dict[str, Any]:
        message = await self.inbox.get()
        if message["t"] == _DIED:
            raise HostDied(message["reason"], message["attempts"], message.get("culprit"))
        return message


class Host:
    """One host process (or remote session) and the attempts multiplexed on it."""

    def __init__(self, org: str, runtime: str) -> None:
        self.org, self.runtime = org, runtime
        self.process: asyncio.subprocess.Process | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.outbox: protocol.Outbox | None = None
        self.channels: dict[str, Channel] = {}
        self.finished: dict[str, None] = {}
        self.loads: dict[str, asyncio.Future[None]] = {}
        self.alive = True
        self.idle_since = asyncio.get_running_loop().time()
        self.pid: int | None = None
        self._reading: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # helpers that live as long as the host
        # An in-process host has some versions' code in memory already (app.py).
        self.preloaded: Callable[[Any], bool] = lambda fv: False

    def attach(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.outbox = protocol.Outbox(writer)
        self._reading = asyncio.create_task(self._read())

    def send(self, message: dict[str, Any]) -> None:
        if self.alive and self.outbox is not None:
            self.outbox.put(message)

    async def load(self, key: str, fv: Any) -> None:
        """Have the host load a function version once; BundleError-like failure raises."""
        future = self.loads.get(key)
        if future is None:
            future = self.loads[key] = asyncio.get_running_loop().create_future()
            if self.preloaded(fv):
                future.set_result(None)
                return
            self.send(
                {
                    "t": "load",
                    "fn": key,
                    "name": fv.name,
                    "version": fv.version,
                    "sha256": fv.sha256,
                    "archive": base64.b64encode(fv.archive).decode(),
                }
            )
        await asyncio.shield(future)

    def open(self, attempt_id: str) -> Channel:
        channel = self.channels[attempt_id] = Channel(self, attempt_id)
        return channel

    def close(self, attempt_id: str) -> None:
        if self.channels.pop(attempt_id, None) is not None:
            self.finished[attempt_id] = None
            while len(self.finished) > _FINISHED_KEPT:
                del self.finished[next(iter(self.finished))]
        if not self.channels:
            self.idle_since = asyncio.get_running_loop().time()

    async def _read(self) -> None:
        assert self.reader is not None
        reason, culprit = "the host closed its connection", None
        try:
            while True:
                message = await protocol.read_message(self.reader, protocol.FROM_HOST_MAX)
                if message is None:
                    break
                problem = self._route(message)
                if problem is not None:
                    reason, culprit = problem
                    break
        except (protocol.ProtocolError, ConnectionError, OSError) as exc:
            reason = f"the host broke the protocol: {exc}"
        await self.kill(reason, culprit)

    def _route(self, message: dict[str, Any]) -> tuple[str, str | None] | None:
        kind = message["t"]
        if kind in ("loaded", "load_failed"):
            future = self.loads.get(str(message.get("fn")))
            if future is None or future.done():
                return f"the host sent {kind} for a function it was not asked to load", None
            if kind == "loaded":
                future.set_result(None)
            else:
                error = message.get("error") or {}
                future.set_exception(HostLoadFailed(str(error.get("message", "load failed"))))
            return None
        attempt_id = message.get("id")
        channel = self.channels.get(attempt_id) if isinstance(attempt_id, str) else None
        if channel is None:
            if attempt_id in self.finished:
                return None  # late words of an attempt that is over: a done, a log line
            return f"the host sent {kind!r} for an unknown attempt", None
        channel.inbox.put_nowait(message)
        return None

    async def kill(self, reason: str, culprit: str | None = None) -> None:
        """End the host; every attempt still on it learns why."""
        if not self.alive:
            return
        self.alive = False
        attempts = len(self.channels)
        for channel in self.channels.values():
            channel.inbox.put_nowait(
                {"t": _DIED, "reason": reason, "attempts": attempts, "culprit": culprit}
            )
        for future in self.loads.values():
            if not future.done():
                future.set_exception(HostUnavailable(f"the function host died: {reason}"))
                future.exception()  # retrieved: nobody may be waiting for it
        if self.writer is not None:
            self.writer.close()
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 5)
        if self._reading is not None and self._reading is not asyncio.current_task():
            self._reading.cancel()
        log.info(
            "function host %s/%s (pid %s) stopped: %s", self.org, self.runtime, self.pid, reason
        )


class HostLoadFailed(ReactorError):
    """The function host could not load the function's code."""

    code = "bundle_error"


def python_host_command() -> list[str]:
    return [sys.executable, "-I", "-m", "reactor_jobs.hosts.python"]


def _bun_host_command() -> list[str] | None:
    try:
        module = importlib.import_module("reactor_jobs.functions.bun_binary")
    except ImportError:
        return None
    command = module.bun_host_command()
    return None if command is None else [str(part) for part in command]


COMMANDS: dict[str, Callable[[], list[str] | None]] = {
    "python": python_host_command,
    "bun": _bun_host_command,
}


class HostPool:
    """The hosts of one worker process, by (org, runtime), started on first use."""

    def __init__(
        self, settings: HostSettings | None = None, env: Mapping[str, str] | None = None
    ) -> None:
        self.settings = settings or HostSettings()
        self.env = dict(env or {})
        self.isolation = detect_isolation(self.settings)
        level = logging.INFO if self.isolation.user or self.isolation.bwrap else logging.WARNING
        log.log(level, "function hosts: isolation %s", self.isolation.summary)
        self._ids: tuple[int, int] | None = None
        self._hosts: dict[tuple[str, str, str], Host] = {}
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}
        self._root: Path | None = None
        self._orgs: set[str] = set()
        self.started = 0
        self.restarts = 0
        self._reaper: asyncio.Task[None] | None = None

    def status(self) -> dict[str, Any]:
        """For /healthz: what isolation is in force and how many hosts run."""
        return {
            "isolation": self.isolation.summary,
            "multi_tenant": self.isolation.multi_tenant,
            "hosts": sum(h.alive for h in self._hosts.values()),
            "started": self.started,
        }

    def counts(self) -> dict[str, int]:
        """For /metrics: hosts running now; started and restarted since the process began."""
        alive = sum(h.alive for h in self._hosts.values())
        return {"hosts": alive, "started": self.started, "restarts": self.restarts}

    async def host(self, org: str, runtime: str, solo: str = "") -> Host:
        """The org's host for `runtime`; with `solo`, a host of its own for one attempt."""
        key = (org, runtime, solo)
        host = self._hosts.get(key)
        if host is not None and host.alive:
            return host
        async with self._locks.setdefault(key, asyncio.Lock()):
            host = self._hosts.get(key)
            if host is None or not host.alive:
                if host is not None:
                    self.restarts += 1
                host = self._hosts[key] = await self._start(org, runtime, solo)
                if self._reaper is None or self._reaper.done():
                    self._reaper = asyncio.create_task(self._reap_idle())
        return host

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(*(h.kill("the worker stopped") for h in self._hosts.values()))
        self._hosts.clear()
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None

    async def _reap_idle(self) -> None:
        while self._hosts:
            await asyncio.sleep(min(self.settings.idle_s, 30.0))
            now = asyncio.get_running_loop().time()
            for key, host in list(self._hosts.items()):
                if not host.channels and now - host.idle_since > self.settings.idle_s:
                    del self._hosts[key]
                    await host.kill("idle")

    async def release(self, host: Host) -> None:
        """Stop a solo host once its attempt is over."""
        for key, held in list(self._hosts.items()):
            if held is host and key[2]:
                del self._hosts[key]
                self._locks.pop(key, None)
                await host.kill("its one attempt is over")

    async def _start(self, org: str, runtime: str, solo: str) -> Host:
        if self.settings.url:
            return await self._connect_remote(org, runtime)
        if not self.isolation.multi_tenant:
            self._orgs.add(org)
            if len(self._orgs) > 1:
                raise HostUnavailable(
                    "this worker cannot keep orgs' code apart (bubblewrap is not installed), "
                    "so it runs one org's code only; install bubblewrap, or set "
                    "[jobs.functions] single_tenant = true to allow more"
                )
        command = COMMANDS.get(runtime, lambda: None)()
        if command is None:
            raise HostUnavailable(
                f"no function host for the {runtime!r} runtime here"
                + (" (bun not found: see README, 'The bun runtime')" if runtime == "bun" else "")
            )
        return await self._spawn(org, runtime, command, solo)

    def _folder(self, org: str, runtime: str, solo: str) -> Path:
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="reactor-hosts-"))
            self._root.chmod(0o711)  # hosts reach their own folder, list nothing
        name = hashlib.sha256(f"{org}\0{runtime}\0{solo}".encode()).hexdigest()[:24]
        folder = self._root / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(mode=0o700)
        if self.isolation.user is not None:
            uid, gid = self._user_ids()
            os.chown(folder, uid, gid)
        return folder

    def _user_ids(self) -> tuple[int, int]:
        if self._ids is None:
            assert self.isolation.user is not None
            self._ids = _ensure_user(self.isolation.user)
        return self._ids

    async def _spawn(self, org: str, runtime: str, command: list[str], solo: str) -> Host:
        folder = self._folder(org, runtime, solo)
        token = secrets.token_urlsafe(24)
        socket_path = str(folder / "worker.sock")
        accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.get_running_loop().create_future()
        )

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if accepted.done():
                writer.close()
            else:
                accepted.set_result((reader, writer))

        server = await asyncio.start_unix_server(
            on_connect, path=socket_path, limit=protocol.FROM_HOST_MAX
        )
        host = Host(org, runtime)
        try:
            if self.isolation.user is not None:
                os.chown(socket_path, *self._user_ids())
            env = {
                **{f"REACTOR_FN_{k}": v for k, v in self.env.items()},
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": str(folder),
                "LANG": "C.UTF-8",
                "PYTHONDONTWRITEBYTECODE": "1",
                "REACTOR_HOST_SOCKET": socket_path,
                "REACTOR_HOST_TOKEN": token,
            }
            argv = self._sandboxed(command, folder)
            host.process = await asyncio.create_subprocess_exec(
                *argv,
                cwd=folder,
                env=env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
                preexec_fn=self._limits(),
            )
            host.pid = host.process.pid
            host.tasks.add(asyncio.create_task(_forward_stderr(host)))
            limit = self.settings.start_timeout_s
            reader, writer = await asyncio.wait_for(_first(accepted, host), limit)
            hello = await asyncio.wait_for(
                protocol.read_message(reader, protocol.FROM_HOST_MAX), limit
            )
            _check_hello(hello, token)
            writer.write(protocol.encode({"t": "welcome", "protocol": protocol.PROTOCOL}))
            host.attach(reader, writer)
        except (TimeoutError, protocol.ProtocolError, OSError, HostUnavailable) as exc:
            if accepted.done() and host.writer is None:
                accepted.result()[1].close()
            await host.kill(f"it did not start: {exc or type(exc).__name__}")
            raise HostUnavailable(f"the {runtime} function host did not start: {exc}") from None
        finally:
            server.close()
            with contextlib.suppress(OSError):
                os.unlink(socket_path)
        self.started += 1
        log.info("function host %s/%s started (pid %s)", org, runtime, host.pid)
        return host

    def _sandboxed(self, command: list[str], folder: Path) -> list[str]:
        bwrap = self.isolation.bwrap
        if bwrap is None:
            return command
        argv = [
            bwrap, "--die-with-parent", "--new-session", "--unshare-pid", "--unshare-ipc",
            "--unshare-uts", "--unshare-cgroup-try", "--proc", "/proc", "--dev", "/dev",
            "--tmpfs", "/tmp",
        ]  # fmt: skip
        if not self.settings.network:
            argv.append("--unshare-net")
        paths = _readable_paths(command)
        # Folders on the way to a bound path: traversable and listable (they hold only the
        # mount points), whatever their modes outside (/root is 0700).
        ancestors = {str(a) for p in [*paths, str(folder)] for a in Path(p).parents} - {"/"}
        for ancestor in sorted(ancestors, key=lambda a: (a.count("/"), a)):
            argv += ["--perms", "0755", "--dir", ancestor]
        for path in paths:
            argv += ["--ro-bind-try", path, path]
        argv += ["--bind", str(folder), str(folder), "--chdir", str(folder), "--"]
        if self.isolation.user is not None:
            # bubblewrap starts as root (it must reach paths only root can), then the host
            # drops to the unprivileged user inside the sandbox, before any job code loads.
            uid, gid = self._user_ids()
            argv += [_SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--"]
        return [*argv, *command]

    def _limits(self) -> Callable[[], None]:
        ids = self._user_ids() if self.isolation.user is not None else None
        sandboxed = self.isolation.bwrap is not None  # setpriv drops the user inside it
        memory = self.settings.memory_mb * 1024 * 1024
        files, procs = self.settings.max_open_files, self.settings.max_processes

        def apply() -> None:  # runs in the child between fork and exec
            os.setsid()
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            resource.setrlimit(resource.RLIMIT_NOFILE, (files, files))
            resource.setrlimit(resource.RLIMIT_DATA, (memory, memory))
            if ids is not None:
                resource.setrlimit(resource.RLIMIT_NPROC, (procs, procs))
            if ids is not None and not sandboxed:
                os.setgroups([])
                os.setgid(ids[1])
                os.setuid(ids[0])

        return apply

    async def _connect_remote(self, org: str, runtime: str) -> Host:
        assert self.settings.url is not None
        parts = urlsplit(self.settings.url)
        if not parts.hostname:
            raise HostUnavailable(f"[jobs.functions] url {self.settings.url!r} has no host")
        host = Host(org, runtime)
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    parts.hostname, parts.port or 8004, limit=protocol.FROM_HOST_MAX
                ),
                self.settings.start_timeout_s,
            )
        except (TimeoutError, OSError) as exc:
            raise HostUnavailable(f"cannot reach the host service: {exc}") from None
        hello = {
            "t": "hello",
            "protocol": protocol.PROTOCOL,
            "runtime": runtime,
            "org": org,
            "token": self.settings.api_key or "",
        }
        writer.write(protocol.encode(hello))
        try:
            welcome = await asyncio.wait_for(
                protocol.read_message(reader, protocol.FROM_HOST_MAX),
                self.settings.start_timeout_s,
            )
        except (TimeoutError, OSError, protocol.ProtocolError) as exc:
            welcome = {"t": "failed", "error": str(exc)}
        if welcome is None or welcome.get("t") != "welcome":
            writer.close()
            raise HostUnavailable("the host service refused this worker (check api_key)")
        host.attach(reader, writer)
        self.started += 1
        return host


def _readable_paths(command: list[str]) -> list[str]:
    """What a sandboxed host must see: system folders, its interpreter, and this package."""
    paths = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/etc"]
    paths += [sys.prefix, sys.base_prefix, sys.exec_prefix]
    package = Path(__file__).resolve().parent.parent  # reactor_jobs/
    paths.append(str(package))
    for entry in sys.path:  # site-packages and the like; never the package's parent folder
        if entry and "site-packages" in entry and os.path.isdir(entry):
            paths.append(entry)
    if command:
        executable = Path(shutil.which(command[0]) or command[0]).resolve()
        paths.append(str(executable.parent))
    return sorted(set(paths))


def _check_hello(hello: dict[str, Any] | None, token: str) -> None:
    if hello is None or hello.get("t") != "hello":
        raise protocol.ProtocolError("the host did not say hello")
    if hello.get("protocol") != protocol.PROTOCOL:
        raise protocol.ProtocolError(f"the host speaks protocol {hello.get('protocol')!r}")
    if not secrets.compare_digest(str(hello.get("token", "")), token):
        raise protocol.ProtocolError("the host's token is wrong")


async def _first(
    accepted: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]], host: Host
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """The host's connection, or an error as soon as its process exits instead."""
    assert host.process is not None
    exited: asyncio.Future[Any] = asyncio.ensure_future(host.process.wait())
    try:
        await asyncio.wait([accepted, exited], return_when=asyncio.FIRST_COMPLETED)
    finally:
        exited.cancel()
    if not accepted.done():
        raise HostUnavailable(f"the host exited with status {host.process.returncode}")
    return accepted.result()


async def _forward_stderr(host: Host, max_lines: int = 200) -> None:
    """What a host prints outside any attempt (start-up errors): to the worker's log."""
    assert host.process is not None and host.process.stderr is not None
    lines = 0
    while line := await host.process.stderr.readline():
        lines += 1
        if lines <= max_lines:
            log.warning(
                "host %s/%s: %s",
                host.org,
                host.runtime,
                line.decode(errors="replace").rstrip()[:2000],
            )
