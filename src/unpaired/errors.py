"""The one base class of every error a user can fix (a bad option, file, folder or checkpoint).

The CLI catches :class:`UnpairedError` and prints its message as one line; anything else is a bug
and gets a traceback log. Each module defines its own subclass (``ConfigError`` here, because the
configuration schema and the runtime helpers below it both raise it)."""

from __future__ import annotations


class UnpairedError(Exception):
    """A failure whose message says what was wrong and what to do; ``exit_code`` is what the CLI returns."""

    exit_code = 2


class ConfigError(UnpairedError, ValueError):
    """A configuration value, file or override is invalid; the message says which and why."""


def message_line(error: BaseException) -> str:
    """The first line of ``error``'s message; its type's name when the message is empty."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def one_line(error: BaseException, limit: int = 200) -> str:
    """``Type: first line of the message`` (at most ``limit`` characters of it), for a log line."""
    if not str(error).strip():
        return type(error).__name__
    return f"{type(error).__name__}: {message_line(error)[:limit]}"
