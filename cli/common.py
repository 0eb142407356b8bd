"""Helpers shared by the command modules: user errors as one message, a progress line."""

from __future__ import annotations

import functools
import sys
import time

import click

EXIT_USER_ERROR = 2


def user_errors(command):
    """Turn a VampkerasError into one message on stderr and exit status 2 (no traceback)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from vampkeras.errors import VampkerasError
        try:
            return command(*args, **kwargs)
        except VampkerasError as error:
            click.echo(f"Error: {error}", err=True)
            sys.exit(EXIT_USER_ERROR)

    return wrapper


class Progress:
    """`examples done/total, elapsed, time left` on one stderr line."""

    def __init__(self, label: str, quiet: bool):
        self.label, self.quiet, self.started = label, quiet, time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (total - done) if done else float("nan")
        click.echo(f"\r{self.label}: {done}/{total} examples, {elapsed:.0f} s elapsed, ~{left:.0f} s left ",
                   err=True, nl=done >= total)
