"""Storage URLs of sweeps and shared experiments, kept secret: a URL's password is masked wherever it
is shown or stored (tables, JSON, logs, errors), child processes get the real URL through the
environment variable ``UNPAIRED_STORAGE`` (never on a command line, which ``ps`` shows every user),
and a user may give it the same way instead of ``--storage``."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
import threading
import warnings

from ..errors import ConfigError, UnpairedError, message_line

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


class StorageLost(UnpairedError, RuntimeError):
    """The database of a shared sweep or experiment went away (server stopped, network lost)."""

    exit_code = 3


def open_storage(url: str, heartbeat: int, grace: int | None, retries: int, what: str):
    """Optuna's RDB storage at ``url`` with heartbeats every ``heartbeat`` seconds: a trial whose
    process has been silent for ``grace`` seconds (default twice the heartbeat) is failed by the next
    process that looks, and re-queued with the same parameters up to ``retries`` times. ``what``
    ('sweep', 'experiment') names the storage in the one-line error for a wrong URL or password."""
    import optuna  # noqa: PLC0415 - optional (the sweep extra)
    from optuna.storages import RDBStorage, RetryFailedTrialCallback  # noqa: PLC0415 - optional

    if heartbeat < 1 or (grace is not None and grace < 1) or retries < 0:
        raise ConfigError(
            f"--heartbeat and --grace must be >= 1 second and --retries >= 0, got {heartbeat}, {grace}, {retries}"
        )
    # several processes on one SQLite file wait for each other's writes instead of failing at once
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        with warnings.catch_warnings():  # Optuna's notes on experimental/renamed heartbeat arguments
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            return RDBStorage(
                url,
                engine_kwargs=engine,
                heartbeat_interval=heartbeat,
                grace_period=grace or 2 * heartbeat,
                failed_trial_callback=RetryFailedTrialCallback(max_retry=retries),
            )
    except Exception as e:  # the driver's message may quote the URL, password included
        raise ConfigError(
            f"cannot open the {what} storage {mask_url(url)}: {first_line(e, url)}; check the URL (or "
            f"{STORAGE_ENV}), the user name and password, and that the database server is running and reachable"
        ) from None


def first_line(e: BaseException, url: str | None) -> str:
    """The first line of an exception's message with ``url``'s password masked (for Optuna's wrapper
    of a database error, the database error's: Optuna's own text guesses at invalid data)."""
    while type(e).__name__ == "StorageInternalError" and e.__cause__ is not None:
        e = e.__cause__
    return mask_text(message_line(e), url)


def storage_cause(e: BaseException) -> BaseException | None:
    """The database error behind ``e`` (SQLAlchemy's errors, Optuna's wrapper of them), looked for in
    ``e`` and the exceptions it was raised from or while handling (Optuna may fail on its own while
    handling a lost connection), or None."""
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        names = {c.__module__.split(".")[0] + "." + c.__name__ for c in type(e).__mro__}
        if "sqlalchemy.SQLAlchemyError" in names or "optuna.StorageInternalError" in names:
            return e
        # `raise ... from None` (our own one-line errors) hides the context: not a database error then
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    return None


def is_storage_error(e: BaseException) -> bool:
    """Whether ``e`` comes from the database: it could not be reached, or failed."""
    return storage_cause(e) is not None


def storage_lost(e: BaseException, url: str, what: str, resume: str) -> StorageLost:
    """The one-line error for a database that went away mid-run; ``resume`` says what a rerun does."""
    return StorageLost(
        f"lost the {what} storage {mask_url(url)} ({first_line(storage_cause(e) or e, url)}); nothing on disk "
        f"is lost: {resume}"
    )


def process_name() -> str:
    """host:pid of this process, recorded on the trial it runs (which machine and process has it)."""
    return f"{socket.gethostname()}:{os.getpid()}"


@contextlib.contextmanager
def heartbeat_errors_as_one_line(url: str, what: str):
    """While a sweep or shared experiment runs, a storage error in Optuna's heartbeat thread (the
    database went away) prints one warning line instead of a thread traceback; training goes on, and
    the next write to the storage ends the command with :func:`storage_lost`'s line."""
    previous = threading.excepthook
    warned = []

    def hook(args) -> None:
        if args.exc_value is not None and is_storage_error(args.exc_value):
            if not warned:
                warned.append(True)
                print(
                    f"warning: cannot record the heartbeat in the {what} storage {mask_url(url)} "
                    f"({first_line(args.exc_value, url)}); training goes on",
                    file=sys.stderr,
                )
            return
        previous(args)

    threading.excepthook = hook
    try:
        yield
    finally:
        threading.excepthook = previous


def yield_if_taken(study, trial, same) -> None:
    """End ``trial`` as a duplicate (pruned, user attribute ``duplicate``: it counts for nothing) if
    another trial of ``study`` has what it was handed (``same(other)``: the same run or grid point):
    one that finished it, or one that runs it and was created first. Optuna can hand two processes
    the same point at once (GridSampler re-deals a started, unfinished point once every point is
    started); the later trial yields. Call it before taking the run's lock and again inside it."""
    import optuna  # noqa: PLC0415 - optional (the sweep extra)

    for t in study.get_trials(deepcopy=False):
        if t.number == trial.number or t.user_attrs.get("duplicate") or not same(t):
            continue
        finished = t.state.name in ("COMPLETE", "PRUNED") or t.user_attrs.get("finished")
        if finished or (t.state.name == "RUNNING" and t.number < trial.number):
            trial.set_user_attr("duplicate", True)
            raise optuna.TrialPruned(f"trial {t.number} has it")
