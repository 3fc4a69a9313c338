"""`integmed-server`: migrate | downgrade | serve | sandbox | dev | audit-verify | keys."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import platformdirs
import uvicorn

from sync_server.app import create_app
from sync_server.db import embedded, migrate
from sync_server.hpr.client import HprClient
from sync_server.sandbox.app import create_sandbox_app
from sync_server.services import audit as audit_service
from sync_server.services import clinics as clinics_service
from sync_server.settings import DatabaseSettings, Settings
from sync_server.signing import issuer as signing_issuer

log = logging.getLogger("integmed.server")

GRACEFUL_TIMEOUT_S = 8
"""Backstop for a stop: requests still running this long after SIGTERM are cancelled. Waiting pulls do not
count against it (a stop signal wakes them at once, `sync_server.db.feed_listener.drain_on_stop_signals`); it
bounds a slow push or a national-service call, and stays under the 10 s a container runtime gives before
SIGKILL. A cancelled push rolls back and the PC sends the same batch again (pushes are idempotent)."""


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to `dev`, which stops several servers together."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _cmd_migrate(args: argparse.Namespace) -> int:
    dsn = DatabaseSettings().database_url
    migrate.upgrade(dsn, args.revision)
    print(f"database at revision {migrate.current_revision_sync(dsn)}")
    return 0


def _cmd_downgrade(args: argparse.Namespace) -> int:
    dsn = DatabaseSettings().database_url
    migrate.downgrade(dsn, args.revision)
    print(f"database at revision {migrate.current_revision_sync(dsn)}")
    return 0


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging setup plus our packages' loggers, so worker processes (``--workers N``, started fresh
    by uvicorn's supervisor, where `main`'s basicConfig never ran) log our messages too."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["formatters"]["integmed"] = {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    config["handlers"]["integmed"] = {
        "class": "logging.StreamHandler",
        "formatter": "integmed",
        "stream": "ext://sys.stderr",
    }
    for name in ("sync_server", "shared"):
        config["loggers"][name] = {"handlers": ["integmed"], "level": level.upper(), "propagate": False}
    return config


def _cmd_serve(args: argparse.Namespace) -> int:
    uvicorn.run(
        "sync_server.asgi:app_from_env",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        proxy_headers=True,
        log_level=args.log_level,
        log_config=_log_config(args.log_level),
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    return 0


def _cmd_sandbox(args: argparse.Namespace) -> int:
    uvicorn.run(create_sandbox_app(), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _cmd_audit_verify(args: argparse.Namespace) -> int:
    async def go() -> int:
        conn = await asyncpg.connect(DatabaseSettings().database_url)
        try:
            result = await audit_service.verify_all(conn)
        finally:
            await conn.close()
        bad = 0
        for chain, (count, brk) in result.items():
            if brk is None:
                print(f"chain {chain}: {count} entries, intact")
            else:
                bad += 1
                print(f"chain {chain}: BROKEN at entry {brk.index + 1} of {count}: {brk.reason}")
        return 1 if bad else 0

    return asyncio.run(go())


async def _ensure_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


def _cmd_keys_root_init(args: argparse.Namespace) -> int:
    from shared.signing import keys

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    key_path, pub_path = out / "root_ed25519.pem", out / "root_ed25519.pub.pem"
    if key_path.exists():
        print(f"keys: {key_path} exists; a root key is never overwritten", file=sys.stderr)
        return 1
    root = keys.generate_private_key()
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(keys.private_key_to_pem(root))
    pub_path.write_bytes(keys.public_key_to_pem(root))
    print(f"root private key  {key_path}  (keep OFFLINE; it only certifies issuing keys)")
    print(f"root public key   {pub_path}")
    print("entry for shared/knowledge/trust/roots.yaml:")
    print(f"  - kid: {keys.key_id(root)}")
    print(f"    public_key: {keys.b64url_encode(keys.public_key_bytes(root))}")
    print(f"    name: {args.name}")
    print("    environment: production")
    return 0


def _cmd_keys_issuer_create(args: argparse.Namespace) -> int:
    from shared.signing import keys

    if args.days < 1:
        print("keys: --days must be at least 1", file=sys.stderr)
        return 2
    try:
        root = keys.private_key_from_pem(Path(args.root_key).read_bytes())
    except (OSError, keys.KeyFormatError) as exc:
        print(f"keys: cannot read the root key: {exc}", file=sys.stderr)
        return 1
    try:
        key_path, cert_path, kid = signing_issuer.create_issuer(
            root, Path(args.out), days=args.days, subject=args.subject
        )
    except FileExistsError as exc:
        print(f"keys: {exc}", file=sys.stderr)
        return 1
    print(f"issuing key {kid} certified by root {keys.key_id(root)} for {args.days} days")
    print(f"INTEGMED_SIGNING_ISSUER_KEY={key_path}")
    print(f"INTEGMED_SIGNING_ISSUER_CERT={cert_path}")
    print(f"INTEGMED_SIGNING_KEK={signing_issuer.new_kek()}   (a fresh key-encryption key; store it as a secret)")
    return 0


def _dev_secret(data_dir: Path) -> str:
    path = data_dir / "jwt_secret"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()


async def _wait_ready(url: str, stop: asyncio.Event, timeout: float = 60) -> bool:
    async with httpx.AsyncClient(trust_env=False) as client:
        deadline = asyncio.get_running_loop().time() + timeout
        while not stop.is_set() and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(url, timeout=2)).status_code == 200:
                    return True
            await asyncio.sleep(0.1)
    return False


async def _dev_async(args: argparse.Namespace, settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(settings)
    api = _Server(
        uvicorn.Config(
            app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S
        )
    )
    sandbox = _Server(
        uvicorn.Config(
            create_sandbox_app(),
            host=args.host,
            port=args.sandbox_port,
            log_level=args.log_level,
            timeout_graceful_shutdown=GRACEFUL_TIMEOUT_S,
        )
    )
    # The demo clinic is seeded before the API starts listening, so whoever waits for /ready (a script, the
    # contract check, the desktop) finds the sandbox doctors enrolled: seeding only needs the sandbox (HPR).
    tasks = [asyncio.create_task(sandbox.serve())]
    base = f"http://{args.host}:{args.port}"
    sandbox_base = f"http://{args.host}:{args.sandbox_port}"
    try:
        if not await _wait_ready(f"{sandbox_base}/health", stop):
            if stop.is_set():
                return 0
            print("dev: the national-services sandbox did not start; see the log above", file=sys.stderr)
            return 1
        async with httpx.AsyncClient(timeout=10, trust_env=False) as http:
            hpr = HprClient(
                http,
                hpr_url=settings.hpr_url,
                gateway_url=settings.abdm_gateway_url,
                client_id=settings.abdm_client_id,
                client_secret=settings.abdm_client_secret.get_secret_value(),
            )
            pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2)
            try:
                seeded = await clinics_service.seed_demo_in_own_transactions(pool, hpr)
            finally:
                await pool.close()
        tasks.append(asyncio.create_task(api.serve()))
        if not await _wait_ready(f"{base}/ready", stop):
            if stop.is_set():
                return 0
            print("dev: the API did not become ready; see the log above", file=sys.stderr)
            return 1
        print(f"IntegMed API      {base}   (Swagger {base}/api/docs, ReDoc {base}/api/redoc)")
        print(f"National sandbox  {sandbox_base}   (OTPs: {sandbox_base}/sandbox/otp-outbox?mobile=+91...)")
        print("Sandbox doctors you can sign in as (OTP from the sandbox outbox):")
        for s in seeded:
            print(f"  {s['mobile']}  {s['name']:<24} {s['qualification']:<28} {s['role']:<12} {s['clinic']}")
        print(f"ready: {base} (Ctrl-C stops everything)", flush=True)
        await stop.wait()
        return 0
    finally:
        listener = getattr(app.state, "feed_listener", None)
        if listener is not None:
            listener.drain()  # waiting pulls answer now (the signal hook did this already on Ctrl-C / SIGTERM)
        api.should_exit = True
        sandbox.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)


def _sigterm_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _cmd_dev(args: argparse.Namespace) -> int:
    # Until the event loop takes over signals, SIGTERM unwinds like Ctrl-C so PostgreSQL is always stopped.
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    data_dir = Path(args.data_dir or platformdirs.user_data_dir("integmed-server")).resolve() / "dev"
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = embedded.start(data_dir)
    try:
        asyncio.run(_ensure_database(cluster.dsn, "integmed"))
        dsn = cluster.dsn_for("integmed")
        migrate.upgrade(dsn)
        # Issuing key under the public SANDBOX root, created once in the data dir and reused on restart.
        issuer_key, issuer_cert, kek = signing_issuer.ensure_dev_signing(data_dir)
        settings = Settings(
            environment="dev",
            database_url=dsn,
            jwt_secret=_dev_secret(data_dir),
            hpr_url=f"http://{args.host}:{args.sandbox_port}/v4/int",
            abdm_gateway_url=f"http://{args.host}:{args.sandbox_port}/api/hiecm",
            signing_issuer_key=issuer_key,
            signing_issuer_cert=issuer_cert,
            signing_kek=kek,
        )
        print(f"embedded PostgreSQL on {cluster.host}:{cluster.port}, data in {cluster.pgdata}", flush=True)
        issuer_kid = signing_issuer.load_issuer(issuer_key, issuer_cert)[1].kid
        print(f"signing: issuing key {issuer_kid} under the public SANDBOX root (test prescriptions only)")
        return asyncio.run(_dev_async(args, settings))
    except KeyboardInterrupt:
        return 0
    finally:
        cluster.stop()
        print("dev: stopped API, sandbox and PostgreSQL", flush=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="integmed-server", description="IntegMed central sync server")
    parser.add_argument("--log-level", default=os.environ.get("INTEGMED_LOG_LEVEL", "info"))
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("migrate", help="upgrade the database named by INTEGMED_DATABASE_URL (idempotent)")
    p.add_argument("--revision", default="head")
    p.set_defaults(func=_cmd_migrate)
    p = sub.add_parser("downgrade", help="downgrade the database to a revision (e.g. base)")
    p.add_argument("revision")
    p.set_defaults(func=_cmd_downgrade)
    p = sub.add_parser("serve", help="serve the API (settings from INTEGMED_* variables)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument(
        "--graceful-timeout",
        type=int,
        default=GRACEFUL_TIMEOUT_S,
        help=f"seconds a stop waits for running requests before cancelling them (default {GRACEFUL_TIMEOUT_S})",
    )
    p.set_defaults(func=_cmd_serve)
    p = sub.add_parser("sandbox", help="serve the national-services sandbox (ABDM gateway + HPR)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    p.set_defaults(func=_cmd_sandbox)
    p = sub.add_parser("dev", help="embedded PostgreSQL + migrations + sandbox + API + demo clinic, one command")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--sandbox-port", type=int, default=8001)
    p.set_defaults(func=_cmd_dev)
    p = sub.add_parser("audit-verify", help="check every audit-log hash chain; exit 1 if one is broken")
    p.set_defaults(func=_cmd_audit_verify)
    keys_parser = sub.add_parser("keys", help="signing keys: create the offline root, create an issuing key")
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    p = keys_sub.add_parser("root-init", help="generate an IntegMed root key offline; prints its trust entry")
    p.add_argument("--out", required=True, help="folder for root_ed25519.pem (private) and its public key")
    p.add_argument("--name", default="IntegMed root", help="name shown to pharmacists in the trust entry")
    p.set_defaults(func=_cmd_keys_root_init)
    p = keys_sub.add_parser("issuer-create", help="generate a server issuing key certified by a root key")
    p.add_argument("--root-key", required=True, help="the root's private key (PEM)")
    p.add_argument("--out", required=True, help="folder for issuer_ed25519.pem and issuer.cert")
    p.add_argument("--days", type=int, default=signing_issuer.DEFAULT_ISSUER_DAYS, help="validity in days")
    p.add_argument("--subject", default="IntegMed server", help="the issuer's name in its certificate")
    p.set_defaults(func=_cmd_keys_issuer_create)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
