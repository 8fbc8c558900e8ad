"""Command line entry point: one module per command (pre-commit style).

Each command module in this package exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the exit
code). Modules are imported lazily so ``validate`` in CI does not pay for Litestar or SQLite imports.
Exit codes: 0 success, 1 findings / failed run, 2 usage or I/O error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from zmi_reconciler import __version__

#: command name -> (module, one-line help). Adding a command touches one new file and one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "run the runner, the reconciler and the API"),
    "quickstart": ("quickstart", "seed demo data when the data dir is empty, then serve (used by `make run`)"),
    "validate": ("validate", "validate schedule files (for CI and pre-commit)"),
    "next": ("next_fires", "print the next fires of a schedule"),
    "run": ("run", "run one schedule now, in process, journaled"),
    "tasks": ("tasks", "print the task catalog"),
    "import-bookings": ("import_bookings", "import a terminal export file into the tna store"),
    "demo": ("demo", "seed demo master data, holidays and a terminal export"),
    "masterdata": ("masterdata", "validate and apply master data (plans, employees) and holidays"),
    "restore": ("restore", "restore the tna store from a backup ZIP"),
    "openapi": ("openapi", "print the OpenAPI document"),
    "schema": ("schema", "print the JSON Schema of a schedule file"),
}


def build_parser(selected: str | None = None) -> argparse.ArgumentParser:
    """Build the top-level parser with one sub-parser per entry of :data:`COMMANDS`.

    Only the ``selected`` command's module is imported (all of them when ``selected`` is None), so
    ``validate`` starts fast.
    """
    parser = argparse.ArgumentParser(prog="zmi-reconciler", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        _add_settings_arguments(p)
        if selected is not None and name != selected:
            continue
        try:
            module = importlib.import_module(f"zmi_reconciler.cli.{module_name}")
        except ModuleNotFoundError as exc:  # a command not built yet must not break the others
            if exc.name != f"zmi_reconciler.cli.{module_name}":
                raise
            p.set_defaults(_missing=True)
            continue
        module.add_arguments(p)
    return parser


def _add_settings_arguments(p: argparse.ArgumentParser) -> None:
    """Options every command shares; they override ``zmi-reconciler.toml`` and ``ZMI_*`` variables."""
    p.add_argument("--config", metavar="FILE", help="settings file (default: ./zmi-reconciler.toml if present)")
    p.add_argument("--data-dir", metavar="DIR", help="data dir (env ZMI_DATA_DIR, default ./var)")
    p.add_argument("--schedules-dir", metavar="DIR", help="schedules dir (env ZMI_SCHEDULES_DIR, default ./schedules.d)")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; returns its exit code (2 for usage errors)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    selected = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(selected if selected in COMMANDS else None)
    args = parser.parse_args(argv)
    if not args.command:
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "_missing", False):
        print(f"zmi-reconciler: command {args.command!r} is not available in this build", file=sys.stderr)
        return 2
    module = importlib.import_module(f"zmi_reconciler.cli.{args._module}")
    try:
        return int(module.run(args))
    except KeyboardInterrupt:
        return 130
