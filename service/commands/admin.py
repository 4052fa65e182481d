"""Server-side commands: serve, worker, migrate, token, demo."""

from __future__ import annotations

import argparse
import os

from service.config import load_settings
from service.console import fail


def serve(args: argparse.Namespace) -> int:
    from service.serve import serve

    serve(load_settings(), args.host, args.port, args.workers)
    return 0


def worker(args: argparse.Namespace) -> int:
    from service.serve import worker_command

    queues = tuple(q.strip() for q in args.queues.split(",") if q.strip())
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
    from service.auth import create_token
    from service.db import Database
    from service.db.migrate import upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.session() as s:
            token = create_token(s, args.tenant)
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
