"""Server-side commands: serve, worker, migrate, token, demo."""

from __future__ import annotations

import argparse
import os

from service.config import load_settings
from service.console import fail


def serve(args: argparse.Namespace) -> int:
    from service.serve import serve

    if args.api_processes < 1:
        return fail("--api-processes must be at least 1")
    if args.workers < 0:
        return fail("--workers must be 0 or more")
    serve(load_settings(), args.host, args.port, args.workers, args.api_processes,
          args.access_log)
    return 0


def worker(args: argparse.Namespace) -> int:
    from service.serve import worker_command

    queues = tuple(q.strip() for q in args.queues.split(",") if q.strip())
    if args.device is not None:  # the worker process reads it from its settings
        os.environ["ROBUSTGATE_DEVICE"] = args.device
    try:
        cmd = worker_command(load_settings(), concurrency=args.concurrency, queues=queues)
    except ValueError as exc:
        return fail(str(exc))
    os.execv(cmd[0], cmd)
    return 0  # not reached


def migrate(args: argparse.Namespace) -> int:
    from service.db.migrate import downgrade, upgrade

    url = load_settings().database_url
    if args.downgrade:
        downgrade(url, args.revision if args.revision != "head" else "base")
    else:
        upgrade(url, args.revision)
    return 0


def token_create(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime, timedelta

    from service.auth import ADMIN_TENANT, create_token
    from service.db import Database
    from service.db.migrate import database_exists, upgrade

    settings = load_settings()
    if not args.tenant and not args.admin:
        return fail("--tenant is required (or --admin for an admin token)")
    if not args.init and not database_exists(settings.database_url):
        return fail(f"no Robustgate database at {_shown(settings.database_url)} "
                    f"(ROBUSTGATE_DATA_DIR={settings.data_dir}): run this where the server "
                    "runs, with the same ROBUSTGATE_DATA_DIR / ROBUSTGATE_DATABASE_URL, or "
                    "pass --init to create a new database; a running server also issues "
                    "tokens over POST /v1/tokens with its admin token")
    upgrade(settings.database_url)
    expires = (datetime.now(UTC) + timedelta(days=args.expires_in_days)
               if args.expires_in_days else None)
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            token = create_token(s, args.tenant or ADMIN_TENANT, name=args.name,
                                 expires_at=expires, admin=args.admin)
    except ValueError as exc:
        return fail(str(exc))
    finally:
        db.dispose()
    print(token)
    return 0


def demo(args: argparse.Namespace) -> int:
    from service.demo import run_demo

    try:
        return run_demo(args.data_dir)
    except RuntimeError as exc:
        return fail(str(exc))


def _shown(url: str) -> str:
    from service.config import _hide_password

    return _hide_password(url)
