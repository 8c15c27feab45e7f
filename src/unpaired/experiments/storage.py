"""Storage URLs of sweeps and shared experiments, kept secret: a URL's password is masked wherever it
is shown or stored (tables, JSON, logs, errors), child processes get the real URL through the
environment variable ``UNPAIRED_STORAGE`` (never on a command line, which ``ps`` shows every user),
and a user may give it the same way instead of ``--storage``."""

from __future__ import annotations

import os
import re

STORAGE_ENV = "UNPAIRED_STORAGE"

# scheme://user:password@host... : the password is everything between the first ':' after the user
# name and the last '@' before the host (a password may itself contain '@' or ':')
_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@]*:)(?P<password>.*)(?P<tail>@[^@]*)$")


def mask_url(url: str | None) -> str | None:
    """``url`` with its password replaced by ``***`` (unchanged without one)."""
    if not url:
        return url
    m = _PASSWORD.match(url)
    if m is None or not m.group("password"):
        return url
    return m.group("head") + "***" + m.group("tail")


def mask_text(text: str, url: str | None) -> str:
    """``text`` with ``url``'s password (and the URL itself) masked: for error messages of drivers."""
    if not url:
        return text
    text = text.replace(url, mask_url(url))
    m = _PASSWORD.match(url)
    if m is not None and len(m.group("password")) >= 4:  # a shorter one would mask ordinary words
        text = text.replace(m.group("password"), "***")
    return text


def storage_url(given: str | None) -> str | None:
    """The storage URL: ``--storage``, else the environment variable UNPAIRED_STORAGE, else None."""
    return given or os.environ.get(STORAGE_ENV) or None


def child_env(url: str) -> dict[str, str]:
    """The environment entries that give a child process the real URL."""
    return {STORAGE_ENV: url}
