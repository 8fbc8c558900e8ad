"""A helper process forked for one piece of start-up work (journal index entries, schedule files), whose result
comes back through a pipe: the second CPU works while the server imports and loads. Linux/macOS only (``fork``);
where it is missing or fails the caller does the work itself."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


def start(target: Callable[..., None], args: tuple[Any, ...], name: str) -> tuple[Any, Any] | None:
    """Fork a daemon process running ``target(send, *args, receive)``: ``send`` is the pipe's writing end (the
    child sends its result with it), ``receive`` the reading end the child inherited and must close first (so
    that a send to a parent killed meanwhile fails instead of blocking forever). Returns ``(process, receive)``
    for the parent, or None when ``fork`` is missing or fails (logged)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=target, args=(send, *args, receive), daemon=True, name=name)
    try:
        process.start()
    except OSError as exc:
        log.info("cannot fork %s (%s); doing its work in this process", name, exc)
        receive.close()
        send.close()
        return None
    send.close()
    return process, receive


def stop(process: Any, receive: Any) -> None:
    """Close the parent's end and end the process (killed if still running). Idempotent."""
    receive.close()
    if process.is_alive():
        process.kill()
    process.join()


def describe_end(process: Any, error: BaseException) -> str:
    """Why a child's result did not arrive, for a log line: ``"was ended by SIGTERM"`` (a signal to the whole
    process group, e.g. systemd stopping the service), ``"exited with code 1"``, or ``"failed (<error>)"``."""
    import signal

    code = process.exitcode
    if code is not None and code < 0:
        try:
            return f"was ended by {signal.Signals(-code).name}"
        except ValueError:
            return f"was ended by signal {-code}"
    if code:
        return f"exited with code {code}"
    return f"failed ({type(error).__name__}: {error})" if str(error) else f"failed ({type(error).__name__})"
