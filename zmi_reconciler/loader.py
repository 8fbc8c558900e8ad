"""Load schedule files (SPEC section 2) into :class:`~zmi_reconciler.schema.Schedule` with precise findings.

Every problem becomes a :class:`Finding` that points at ``file:line:column`` (1-based) of the offending key or
value and names the field path (``tasks[2].params.keep``). Loading never raises for bad file content; only
:func:`load_paths` raises ``FileNotFoundError`` for a path that does not exist.

How: ruamel.yaml (C parser when ``ruamel.yaml.clib`` is installed) composes the YAML node graph, which keeps
the mark of every node. We build plain Python data from the nodes ourselves, recording the position of every
key and value, so that pydantic's error locations map back to the text. Building it ourselves also lets us
reject duplicate keys, unsupported tags and alias bombs *before* anything large is created.

Error codes (stable; CI configurations may match on them):

====  ==========================================================================================
code  meaning
====  ==========================================================================================
E001  the file cannot be read (permissions, dangling symlink, not a regular file)
E002  the file is larger than 256 KiB
E003  the file name is not ``<id>.yaml`` / ``<id>.yml`` with id ``^[a-z0-9][a-z0-9_-]{0,62}$``
E004  a symlink in a schedules folder points outside that folder
E005  the file is not valid UTF-8
E006  a tab character in indentation (YAML indents with spaces only)
E007  YAML syntax error (also undefined aliases, forbidden control characters)
E008  duplicate key in a mapping
E009  more than one YAML document in the file
E010  alias expansion beyond the limit (a "billion laughs" file) or a recursive alias
E011  empty file (no document, or an empty one such as only ``---``; an explicit ``null`` is E012)
E012  a mapping is expected but the file has a list or a scalar there (top level or a nested field)
E013  unsupported YAML tag (``!python/object`` and friends; only plain YAML types are allowed)
E014  nesting deeper than the limit
E015  not a regular file (a FIFO, socket or device): never opened, so reading cannot block
E020  invalid value: wrong type, out of range, wrong format (the message says what was expected)
E021  unknown key (the message lists the allowed keys)
E022  missing required key
E023  unknown task name (the message lists the valid names)
E024  task not available in zmi-reconciler (the message says why)
E025  unknown timing type (the message lists the valid types)
E030  two files define the same schedule id (``x.yaml`` and ``x.yml``; see :mod:`zmi_reconciler.lint`)
E031  a ``run_command`` names a command missing from the server's allowlist (only when the settings are known;
      see :mod:`zmi_reconciler.lint`)
====  ==========================================================================================

Warnings W001-W005 come from :mod:`zmi_reconciler.lint`.
"""

from __future__ import annotations

import difflib
import hashlib
import os
import re
import stat
import types
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from zmi_reconciler.schema import SCHEDULE_ID_RE, TIMING_TYPES, Schedule

#: Largest schedule file we read, bytes.
MAX_FILE_BYTES = 256 * 1024
#: Most nodes that aliases may add on top of the nodes written in the file.
MAX_ALIAS_EXPANSION = 10_000
#: Deepest nesting of mappings and lists.
MAX_DEPTH = 64
SUFFIXES = (".yaml", ".yml")

Severity = Literal["error", "warning"]

CODES: dict[str, str] = {
    "E001": "cannot read file", "E002": "file too large", "E003": "invalid file name",
    "E004": "symlink outside the folder", "E005": "not UTF-8", "E006": "tab in indentation",
    "E007": "YAML syntax error", "E008": "duplicate key", "E009": "several documents",
    "E010": "alias expansion beyond limit", "E011": "empty file", "E012": "mapping expected",
    "E013": "unsupported YAML tag", "E014": "nesting too deep", "E015": "not a regular file", "E020": "invalid value", "E021": "unknown key",
    "E022": "missing key", "E023": "unknown task", "E024": "unavailable task", "E025": "unknown timing type",
    "E030": "duplicate schedule id", "E031": "command not allowlisted",
    "W001": "calculation before backup", "W002": "duplicate schedule name", "W003": "DST gap or fold",
    "W004": "monthly day 29..31", "W005": "odd task params",
}


@dataclass
class Finding:
    """One validation error or lint warning.

    ``line``/``column`` are 1-based; ``path`` is the field path (``tasks[2].params.keep``, empty for the
    whole file); ``code`` is one of :data:`CODES`; ``message`` says what is wrong and what was expected.
    """

    file: str
    line: int
    column: int
    path: str
    code: str
    severity: Severity
    message: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``validate --format json``."""
        return asdict(self)

    def text(self) -> str:
        """``file:line:col: severity CODE path: message`` (the path part only when there is one)."""
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {self.severity} {self.code} {where}{self.message}"


#: Key and value position of one path: (key_line, key_col, value_line, value_col), 1-based.
Position = tuple[int, int, int, int]
PathTuple = tuple[Union[str, int], ...]


@dataclass
class LoadResult:
    """What loading one file produced. ``schedule`` is None when any error finding exists.

    ``content_hash`` is the SHA-256 hex digest of the file bytes; ``data`` the bytes (empty when the file was
    not read). ``positions`` maps field paths (tuples of keys and indexes) to key/value positions, for
    findings computed later (lint). ``stat_key``: (st_ino, st_size, st_mtime_ns, st_ctime_ns) of the file as
    opened, before its bytes were read (None when not read from a file): the reconciler's first pass takes
    ``content_hash`` for the file while its stat still says this, instead of reading it again.
    """

    schedule_id: str
    file: Path
    schedule: Schedule | None
    findings: list[Finding]
    content_hash: str
    data: bytes
    positions: dict[PathTuple, Position] = field(default_factory=dict, repr=False)
    stat_key: tuple[int, int, int, int] | None = field(default=None, repr=False)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def where(self, path: PathTuple, key: bool = False) -> tuple[int, int]:
        """(line, column) of the value (or key) at ``path``; the nearest recorded ancestor otherwise, 1:1 last."""
        for n in range(len(path), -1, -1):
            pos = self.positions.get(tuple(path[:n]))
            if pos is not None:
                return (pos[0], pos[1]) if key and n == len(path) else (pos[2], pos[3])
        return 1, 1


def path_str(path: PathTuple) -> str:
    """``("tasks", 2, "params", "keep")`` -> ``"tasks[2].params.keep"``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Problem(Exception):
    """Internal: stops loading with one finding."""

    def __init__(self, code: str, line: int, column: int, message: str, path: PathTuple = ()) -> None:
        super().__init__(message)
        self.code, self.line, self.column, self.message, self.path = code, line, column, message, path


# ----------------------------------------------------------------------------------------------------------
# public entry points


def load_schedule_file(path: Path, root: Path | None = None) -> LoadResult:
    """Load one schedule file. ``root``: the folder it was found in (symlinks must stay inside it).

    Never raises for bad content or unreadable files: those become findings (E001..E025).
    """
    path = Path(path)
    name = str(path)
    if root is not None and path.is_symlink():
        target = path.resolve()
        root_resolved = Path(root).resolve()
        if root_resolved not in target.parents:
            return _result(path, [_finding(name, 1, 1, "E004", f"symlink points outside the folder {root}: "
                                                                f"{target}; copy the file instead")], b"")
    try:
        mode = os.stat(path).st_mode  # follows a symlink (checked above to stay inside the folder)
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(mode):
            return _result(path, [_not_regular(name)], b"")
        # O_NONBLOCK: a FIFO swapped in after the stat must not block open() (the reconciler thread)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        with open(fd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                return _result(path, [_not_regular(name)], b"")
            data = fh.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                digest = hashlib.sha256(data)
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
                return LoadResult(_stem(path), path, None, [_too_large(name)], digest.hexdigest(), b"")
    except IsADirectoryError:
        return _result(path, [_finding(name, 1, 1, "E001", "cannot read: is a directory, expected a file")], b"")
    except OSError as exc:
        return _result(path, [_finding(name, 1, 1, "E001", f"cannot read: {exc.strerror or exc}")], b"")
    result = _load(data, path)
    result.stat_key = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    return result


def load_schedule_text(text: str | bytes, filename: str) -> LoadResult:
    """Load a schedule from memory (API uploads, tests). ``filename`` gives the id (its stem) and the file
    name in findings. Never raises for bad content."""
    data = text.encode("utf-8", errors="surrogateescape") if isinstance(text, str) else bytes(text)
    return _load(data, Path(filename))


def load_paths(paths: list[Path]) -> list[LoadResult]:
    """Load files and folders. Folders contribute their ``*.yaml``/``*.yml`` files (not dotfiles, not
    subfolders), sorted by name; symlinks in a folder must point inside it. Files given directly are loaded
    whatever their name (the name is still checked, E003).

    Raises ``FileNotFoundError`` naming the first path that does not exist.
    """
    results: list[LoadResult] = []
    seen: set[Path] = set()  # a file named twice (folder and file argument) is loaded once

    def add(path: Path, root: Path | None) -> None:
        key = path.absolute()
        if key not in seen:
            seen.add(key)
            results.append(load_schedule_file(path, root=root))

    for p in map(Path, paths):
        if p.is_dir():
            for child in sorted(p.iterdir()):
                if is_schedule_file_name(child.name) and not child.is_dir():
                    add(child, p)
        elif p.exists() or p.is_symlink():
            add(p, None)
        else:
            raise FileNotFoundError(f"{p}: no such file or directory")
    return results


def is_schedule_file_name(name: str) -> bool:
    """True for names a schedules folder takes into account: ``*.yaml``/``*.yml``, not dotfiles."""
    return not name.startswith(".") and name.endswith(SUFFIXES)


# ----------------------------------------------------------------------------------------------------------
# the pipeline: bytes -> text -> nodes -> data (+ positions) -> Schedule


def _load(data: bytes, path: Path) -> LoadResult:
    name = str(path)
    if len(data) > MAX_FILE_BYTES:
        return _result(path, [_too_large(name)], data)
    findings: list[Finding] = []
    if not (SCHEDULE_ID_RE.fullmatch(path.stem) and path.suffix in SUFFIXES):
        findings.append(_finding(name, 1, 1, "E003", f"file name {path.name!r} is not a valid schedule file name: "
                                                     "expected <id>.yaml or <id>.yml with id made of a-z, 0-9, "
                                                     "'_' and '-', starting with a letter or digit, at most 63 "
                                                     "characters"))
    positions: dict[PathTuple, Position] = {}
    try:
        text = _decode(data)
        _check_tabs(text)
        _check_nesting(text)
        root = _compose(text)
        if "*" in text:  # no alias without an asterisk
            _check_aliases(root)
        if not isinstance(root, MappingNode):
            line, col = _mark(root)
            raise _Problem("E012", line, col, "expected a mapping of keys (name, timing, tasks, ...) at the top "
                                              f"level, got {_node_kind(root)}")
        builder = _Builder()
        value = builder.build(root, ())
        positions = builder.positions
        if builder.problems:
            findings.extend(_finding(name, p.line, p.column, p.code, p.message, p.path) for p in builder.problems)
            return _result(path, findings, data, positions=positions)
    except _Problem as p:
        findings.append(_finding(name, p.line, p.column, p.code, p.message, p.path))
        return _result(path, findings, data, positions=positions)
    schedule = None
    try:
        schedule = Schedule.model_validate(value)
    except ValidationError as exc:
        findings.extend(_map_validation_errors(exc, value, positions, name))
    return _result(path, findings, data, schedule if not findings else None, positions)


def _result(path: Path, findings: list[Finding], data: bytes, schedule: Schedule | None = None,
            positions: dict[PathTuple, Position] | None = None) -> LoadResult:
    findings.sort(key=lambda f: (f.line, f.column, f.code, f.path))
    return LoadResult(_stem(path), path, schedule, findings, hashlib.sha256(data).hexdigest(), data,
                      positions or {})


def _stem(path: Path) -> str:
    return path.name.rsplit(".", 1)[0] if path.suffix in SUFFIXES else path.name


def _finding(file: str, line: int, column: int, code: str, message: str, path: PathTuple = ()) -> Finding:
    return Finding(file, line, column, path_str(path), code, "error", message)


def _not_regular(name: str) -> Finding:
    return _finding(name, 1, 1, "E015", "not a regular file (a FIFO, socket or device); a schedule file must be a "
                                        "plain file, it is not opened")


def _too_large(name: str) -> Finding:
    return _finding(name, 1, 1, "E002", f"file is larger than {MAX_FILE_BYTES // 1024} KiB; a schedule file is "
                                        "a few hundred bytes, check that this is the right file")


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", errors="replace")) + 1
        raise _Problem("E005", line, column, f"byte 0x{data[exc.start]:02x} is not valid UTF-8; save the file "
                                             "as UTF-8") from None
    return text[1:] if text.startswith("\ufeff") else text


_LEADING_WS = re.compile(r"^[ \t]*", re.MULTILINE)


def _check_tabs(text: str) -> None:
    if "\t" not in text:
        return
    for number, line in enumerate(text.split("\n"), start=1):
        indent = _LEADING_WS.match(line).group(0)  # type: ignore[union-attr]
        if "\t" in indent and line.strip():
            raise _Problem("E006", number, indent.index("\t") + 1,
                           "tab character in indentation; YAML indents with spaces only")


_COMPACT_BLOCK = re.compile(r"(?:[-?:][ \t]+){%d}" % MAX_DEPTH)


def _check_nesting(text: str) -> None:
    """Refuse very deep flow or compact-block nesting before the C parser sees it (deep recursion there can
    crash the process). Counts brackets conservatively, even inside quotes."""
    if text.count("[") + text.count("{") > MAX_DEPTH:
        depth = 0
        for index, ch in enumerate(text):
            if ch in "[{":
                depth += 1
                if depth > MAX_DEPTH:
                    line, col = _offset_to_line_col(text, index)
                    raise _Problem("E014", line, col, f"nesting deeper than {MAX_DEPTH} levels")
            elif ch in "]}" and depth:
                depth -= 1
    m = _COMPACT_BLOCK.search(text)
    if m:
        line, col = _offset_to_line_col(text, m.start())
        raise _Problem("E014", line, col, f"nesting deeper than {MAX_DEPTH} levels")


def _offset_to_line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


_STD = "tag:yaml.org,2002:"
#: Tag the fast composer gives plain (unquoted, untagged) scalars; :func:`_resolve_plain` resolves them.
_PLAIN = "tag:zmi-reconciler,2026:plain"

try:
    from _ruamel_yaml import CParser as _CParser  # ruamel.yaml.clib: libyaml
except ImportError:  # pragma: no cover - the pure-Python parser gives the same results, slower
    _CParser = None

if _CParser is not None:
    class _Composer(_CParser):  # type: ignore[misc,valid-type]
        """libyaml's composer without ruamel's per-node resolver machinery (most of the time of a small file):
        plain scalars get :data:`_PLAIN` and are resolved by :func:`_resolve_plain` (YAML 1.2 core schema)."""

        def resolve(self, kind: type, value: Any, implicit: tuple[bool, bool]) -> str:
            if kind is ScalarNode:
                return _PLAIN if implicit[0] else _STD + "str"
            return _STD + ("seq" if kind is SequenceNode else "map")

        def descend_resolver(self, *args: Any) -> None:
            pass

        def ascend_resolver(self, *args: Any) -> None:
            pass


def _tag(node: Node) -> str:
    """The node's resolved tag; avoids ruamel's Tag.__str__ (URI decoding per node) in the common case."""
    ctag = node.ctag
    suffix = ctag.suffix
    if ctag.handle is None and isinstance(suffix, str) and "%" not in suffix:
        return suffix
    return str(ctag)


def _documents(text: str) -> tuple[Node | None, Node | None]:
    """The first two documents of ``text`` (None when absent)."""
    if _CParser is None:
        docs = YAML(typ="safe", pure=True).compose_all(text)
        first = next(docs, None)
        return first, (next(docs, None) if first is not None else None)
    parser = _Composer(text)
    try:
        first = parser.get_node() if parser.check_node() else None
        second = parser.get_node() if first is not None and parser.check_node() else None
    finally:
        parser.dispose()
    return first, second


def _compose(text: str) -> Node:
    try:
        first, second = _documents(text)
    except MarkedYAMLError as exc:
        colon = _flow_colon_problem(exc, text)
        if colon is not None:
            raise colon from None
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise _Problem("E007", line, col, _syntax_message(exc, text, mark)) from None
    except YAMLError as exc:  # ReaderError: forbidden characters
        position = getattr(exc, "position", None)
        if isinstance(position, int):
            line, col = _offset_to_line_col(text, position)
            char = getattr(exc, "character", None)
            code_point = ord(char) if isinstance(char, str) else char
            what = f"character U+{code_point:04X}" if isinstance(code_point, int) else "a character"
            raise _Problem("E007", line, col, f"{what} is not allowed in YAML") from None
        raise _Problem("E007", 1, 1, f"cannot parse YAML: {exc}") from None
    if second is not None:
        line = _document_start_line(text, second)
        raise _Problem("E009", line, 1, "a second YAML document starts here; a schedule file holds exactly one "
                                        "document (remove the '---' line and what follows, or split the file)")
    if first is None or (isinstance(first, ScalarNode) and _tag(first) == _PLAIN and first.value == ""):
        raise _Problem("E011", 1, 1, "empty file; expected a mapping with at least name, timing and tasks")
    return first


_FLOW_PLAIN = re.compile(r"[^,\[\]{}\s]+")
_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")
_KEY_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*$")
_LIST_KEY_BEFORE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)\s*:\s*\[[^\[\]{}]*$")


def _flow_colon_problem(exc: MarkedYAMLError, text: str) -> _Problem | None:
    """E007 for an unquoted value with a ``:`` inside ``{...}`` or ``[...]`` (flow style), at the value's start.

    ``timing: {type: daily, at: 05:00}`` is valid YAML 1.2, but libyaml (``ruamel.yaml.clib``, the parser we
    use) stops at the second ``:`` with "found unexpected ':'", while the same ``at: 05:00`` in block style
    loads. The message names the value and what to write instead, checked against the field of that key
    (:func:`_colon_fix`): ``at: "05:00"``; ``at: 5:00`` -> ``"05:00"``; ``timeout: 1:30`` -> ``90m``; when no
    form with that text would load, it says why. None for any other syntax error.
    """
    start = exc.context_mark
    if exc.problem != "found unexpected ':'" or exc.context != "while scanning a plain scalar" or start is None:
        return None
    line_text = text.split("\n")[start.line]
    value = _FLOW_PLAIN.match(line_text, start.column)
    if value is None:
        return None
    written = value.group(0)
    key = _KEY_BEFORE.search(line_text, 0, start.column)
    in_list = key is None
    key = key or _LIST_KEY_BEFORE.search(line_text, 0, start.column)
    name = key.group(1) if key else None
    offset = sum(len(line) + 1 for line in text.split("\n")[:start.line]) + start.column
    fields = _fields_named(name, _inside_params(text, offset)) if name else ()
    fix, note = _colon_fix(fields, written, in_list)
    if _CLOCK.match(written) and (not fields or any(_accepts(f, "00:00", in_list) for f in fields)):
        what = f"unquoted time {written}"
    else:
        what = f"unquoted value {written!r} with a ':'"
    why = (f"{what} inside {{...}} or [...] (flow style): libyaml, the YAML parser used here, does not accept an "
           "unquoted ':' in a value there (YAML 1.2 itself does)")
    if fix is None:
        return _Problem("E007", start.line + 1, start.column + 1, f"{why}; quoted, it would not load either: {note}")
    suggestion = f"{name}: {fix}" if name and not in_list else fix
    verb = "quote it:" if fix.startswith('"') else "write"
    return _Problem("E007", start.line + 1, start.column + 1,
                    f"{why}; {verb} {suggestion}" + (f" ({note})" if note else ""))


def _inside_params(text: str, offset: int) -> bool:
    """True when the flow collection around ``offset`` lies inside a task's ``params: {...}`` (brackets are
    counted backwards from ``offset``; quotes are not parsed, good enough for a hint)."""
    closed = 0
    for index in range(offset - 1, -1, -1):
        ch = text[index]
        if ch in "}]":
            closed += 1
        elif ch in "{[":
            if closed:
                closed -= 1
            elif ch == "{" and re.search(r"(?:^|[\s,{])params\s*:\s*$", text[max(0, index - 80):index]):
                return True
    return False


def _colon_fix(fields: tuple[Any, ...], written: str, in_list: bool) -> tuple[str | None, str]:
    """What to write for the value ``written`` (it holds a ``:``) of a key whose fields are ``fields``
    (:func:`_fields_named`; empty: an unknown key), as ``(YAML token, note)``.

    The token is the first of these that one of the fields accepts: ``written`` itself; as a time ``HH:MM``
    (``5:00`` -> ``05:00``, ``05:00:00`` -> ``05:00``); as a duration with a unit (``1:30`` read as
    hours:minutes -> ``90m``). It is double-quoted when it holds a ``:``. The note says what was changed and
    why. ``(None, reason)`` when no candidate loads: the reason is the error the quoted value would get. For an
    unknown key the token is ``written`` quoted (the key itself is then reported, E021).
    """
    candidates = [(written, "")]
    clock = _CLOCK.match(written)
    if clock:
        hours, minutes, seconds = int(clock.group(1)), int(clock.group(2)), clock.group(3)
        if seconds in (None, "00"):
            candidates.append((f"{hours:02d}:{minutes:02d}", "a time is HH:MM, without seconds" if seconds
                               else "a time is HH:MM with a two-digit hour"))
        if minutes < 60 and int(seconds or 0) < 60:
            from zmi_reconciler.schema import format_duration

            total = hours * 3600 + minutes * 60 + int(seconds or 0)
            unit = "hours:minutes:seconds" if seconds else "hours:minutes"
            candidates.append((format_duration(total), f"{written} taken as {unit}; a duration takes a unit s, m, "
                                                       "h or d, or is whole seconds"))
    if not fields:
        return _token(written), ""
    for candidate, note in candidates:
        if any(_accepts(f, candidate, in_list) for f in fields):
            return _token(candidate), note
    return None, _rejection(fields[0], written, in_list)


def _token(value: str) -> str:
    """``value`` as a YAML token that flow style reads back as this text: double-quoted when it has a ``:``."""
    import json

    return json.dumps(value, ensure_ascii=False) if ":" in value or value != value.strip() else value


_ADAPTERS: dict[int, Any] = {}


def _adapter(info: Any) -> Any:
    """A strict pydantic ``TypeAdapter`` for one model field (cached; only built on the error path)."""
    adapter = _ADAPTERS.get(id(info))
    if adapter is None:
        from pydantic import ConfigDict, PydanticUserError, TypeAdapter

        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        try:
            adapter = TypeAdapter(annotation, config=ConfigDict(strict=True))
        except PydanticUserError:  # a model field: models carry their own (strict) config
            adapter = TypeAdapter(annotation)
        _ADAPTERS[id(info)] = adapter
    return adapter


def _accepts(info: Any, value: str, in_list: bool) -> bool:
    """True when the field ``info`` accepts the text ``value`` (as an item of a list when ``in_list``)."""
    try:
        _adapter(info).validate_python([value] if in_list else value)
    except ValidationError:
        return False
    return True


def _rejection(info: Any, value: str, in_list: bool) -> str:
    """Why the field ``info`` refuses the text ``value``: the finding message the quoted value would get."""
    try:
        _adapter(info).validate_python([value] if in_list else value)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        err = next((e for e in errors if e["type"] not in _TYPE_ERRORS), errors[0])
        ctx = err.get("ctx") or {}
        if err["type"] == "string_pattern_mismatch" and ctx.get("pattern") != _HHMM_PATTERN and info.description:
            return f"expected {info.description}, got {_show(value)}"
        return _value_message(err["type"], ctx, err["msg"], value, (), None)
    return "the value is not valid here"


#: key as written -> ((FieldInfo, inside a task's params), ...), built on first use.
_FIELDS: dict[str, tuple[tuple[Any, bool], ...]] = {}


def _fields_named(key: str, in_params: bool) -> tuple[Any, ...]:
    """The model fields (``FieldInfo``) that a schedule file writes as ``key``, among schedule, timings,
    exclude windows and task entries, or (``in_params``) among the tasks' params; all of them when that side
    has none. (``from`` is an exclude window's time and a date in ``calculate_days`` params.)"""
    if not _FIELDS:
        seen: set[tuple[type[BaseModel], bool]] = set()
        todo: list[tuple[type[BaseModel], bool]] = [(Schedule, False)]
        while todo:
            model, params = todo.pop()
            if (model, params) in seen:
                continue
            seen.add((model, params))
            for name, info in model.model_fields.items():
                written = info.alias or name
                _FIELDS[written] = _FIELDS.get(written, ()) + ((info, params),)
                item = _item_annotation(info.annotation)
                inner = _models_in(info.annotation) + (_models_in(item) if item is not None else [])
                todo.extend((m, params or written == "params") for m in inner)
    every = _FIELDS.get(key, ())
    side = tuple(info for info, params in every if params == in_params)
    return side or tuple(info for info, _ in every)


def _colon_hint(path: PathTuple, data: Any, value: str) -> str:
    """For an invalid text with a ``:`` in block style (``at: 5:00``, ``timeout: 1:30``): ``"; write ..."``
    with the same suggestion flow style gets (:func:`_colon_fix`), or ``""`` when there is none."""
    in_list = bool(path) and isinstance(path[-1], int)
    field_path = path[:-1] if in_list else path
    info = _field_info(field_path, data)
    if info is None or not field_path or not isinstance(field_path[-1], str):
        return ""
    fix, note = _colon_fix((info,), value, in_list)
    if fix is None or fix.strip('"') == value:
        return ""
    return f"; write {fix if in_list else f'{field_path[-1]}: {fix}'}" + (f" ({note})" if note else "")


def _syntax_message(exc: MarkedYAMLError, text: str, mark: Any) -> str:
    problem = exc.problem or "syntax error"
    if problem.startswith("found undefined alias") and mark is not None:
        alias = re.match(r"\*([^\s,\]}]+)", text.split("\n")[mark.line][mark.column:])
        if alias:
            return f"undefined alias '*{alias.group(1)}' (no anchor '&{alias.group(1)}' before it)"
    if exc.context and exc.context_mark is not None and exc.context_mark is not mark:
        return f"{problem} ({exc.context} started at line {exc.context_mark.line + 1}, column " \
               f"{exc.context_mark.column + 1})"
    return f"{problem} ({exc.context})" if exc.context else problem


def _document_start_line(text: str, node: Node) -> int:
    """Line of the '---' that starts the document holding ``node`` (the node's own line otherwise)."""
    lines = text.split("\n")
    node_line = node.start_mark.line
    for index in range(min(node_line, len(lines) - 1), -1, -1):
        if lines[index].startswith("---"):
            return index + 1
    return node_line + 1


def _mark(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _node_kind(node: Node) -> str:
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, MappingNode):
        return "a mapping"
    if _tag(node) == _STD + "null" or (_tag(node) == _PLAIN and _NULL.match(node.value)):
        return "null"  # a document that is only `null` or `~` is not empty: it says null
    return f"the scalar {node.value!r}"


def _check_aliases(root: Node) -> None:
    """Count the nodes of the fully expanded document without expanding it (memoised over the node DAG).

    Raises E010 when aliases would add more than :data:`MAX_ALIAS_EXPANSION` nodes or refer to themselves.
    """
    sizes: dict[int, int] = {}
    active: set[int] = set()
    distinct = 0

    def size(node: Node, depth: int) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in active:
            line, col = _mark(node)
            raise _Problem("E010", line, col, "recursive alias: this node contains itself")
        if depth > MAX_DEPTH:
            line, col = _mark(node)
            raise _Problem("E014", line, col, f"nesting deeper than {MAX_DEPTH} levels")
        active.add(key)
        total = 1
        if isinstance(node, SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        active.discard(key)
        sizes[key] = total
        distinct += 1
        if total - distinct > MAX_ALIAS_EXPANSION:
            line, col = _mark(node)
            raise _Problem("E010", line, col, f"aliases expand to more than {MAX_ALIAS_EXPANSION} extra nodes "
                                              "(a 'billion laughs' file?); write the values out instead")
        return total

    size(root, 0)


class _Builder:
    """Node graph -> plain data; records positions, duplicate keys (E008) and unsupported tags (E013)."""

    def __init__(self) -> None:
        self.positions: dict[PathTuple, Position] = {}
        self.problems: list[_Problem] = []

    def build(self, node: Node, path: PathTuple, key_mark: tuple[int, int] | None = None, depth: int = 0) -> Any:
        mark = node.start_mark
        here = (mark.line + 1, mark.column + 1)
        self.positions[path] = (key_mark or here) + here  # type: ignore[assignment]
        kind = type(node)
        if kind is ScalarNode:
            ctag = node.ctag
            if ctag.suffix == _PLAIN:  # the common case, inlined: this loop is the hot path of `validate`
                return _resolve_plain(node.value)
            return self._scalar(node, path)
        if depth >= MAX_DEPTH:
            raise _Problem("E014", here[0], here[1], f"nesting deeper than {MAX_DEPTH} levels", path)
        if kind is MappingNode:
            return self._mapping(node, path, depth)
        if _tag(node) != _STD + "seq":
            self._tag_problem(node, path)
        return [self.build(child, path + (i,), None, depth + 1) for i, child in enumerate(node.value)]

    def _mapping(self, node: MappingNode, path: PathTuple, depth: int) -> dict[str, Any]:
        if _tag(node) != _STD + "map":
            self._tag_problem(node, path)
        out: dict[str, Any] = {}
        first_seen: dict[str, int] = {}
        merges: list[Node] = []
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode):
                line, col = _mark(key_node)
                self.problems.append(_Problem("E020", line, col, "a key must be plain text, not a list or mapping",
                                              path))
                continue
            key = str(key_node.value)
            if key == "<<" and _tag(key_node) in (_PLAIN, _STD + "merge"):
                merges.append(value_node)
                continue
            kline, kcol = key_node.start_mark.line + 1, key_node.start_mark.column + 1
            if key in first_seen:
                self.problems.append(_Problem("E008", kline, kcol, f"duplicate key '{key}' (first defined on line "
                                                                   f"{first_seen[key]})", path + (key,)))
                continue
            first_seen[key] = kline
            out[key] = self.build(value_node, path + (key,), (kline, kcol), depth + 1)
        for merge in merges:  # YAML merge keys: '<<: *base' adds keys not written explicitly
            sources = merge.value if isinstance(merge, SequenceNode) else [merge]
            for source in sources:
                if not isinstance(source, MappingNode):
                    line, col = _mark(source)
                    self.problems.append(_Problem("E012", line, col, "'<<' merges a mapping (or a list of "
                                                                     "mappings)", path))
                    continue
                merged = self._mapping(source, path, depth + 1)
                for key, value in merged.items():
                    out.setdefault(key, value)
        return out

    def _scalar(self, node: ScalarNode, path: PathTuple) -> Any:
        tag, value = _tag(node), node.value
        if tag == _PLAIN:
            return _resolve_plain(value)
        if tag == _STD + "str" or tag == _STD + "timestamp":
            return value  # dates stay text; the models parse them
        if tag == _STD + "null":
            return None
        if tag == _STD + "bool":
            return value.lower() in ("true", "yes", "on", "y")
        if tag in (_STD + "int", _STD + "float"):
            resolved = _resolve_plain(value)
            if isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
                return resolved
            return value
        self._tag_problem(node, path)
        return value

    def _tag_problem(self, node: Node, path: PathTuple) -> None:
        line, col = _mark(node)
        tag = _tag(node)
        tag = "!!" + tag[len(_STD):] if tag.startswith(_STD) else tag
        self.problems.append(_Problem("E013", line, col, f"unsupported YAML tag '{tag}'; use plain values "
                                                         "without tags", path))


_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^(?:[-+]?[0-9][0-9_]*|0o[0-7]+|0x[0-9a-fA-F]+)$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9][0-9_]*(?:\.[0-9_]*)?)(?:[eE][-+]?[0-9]+)?$")
_SPECIAL_FLOAT = {".inf": float("inf"), "+.inf": float("inf"), "-.inf": float("-inf"), ".nan": float("nan")}


def _resolve_plain(value: str) -> Any:
    """A plain scalar by the YAML 1.2 core schema: null, bool, int (also 0o/0x), float, else text.

    YAML 1.1 forms stay text on purpose: ``yes``/``on`` are not booleans and ``05:00`` is not the
    sexagesimal number 300. Dates stay text; the models parse them.
    """
    first = value[:1]
    if first.isalpha() and first not in "nNtTfF":  # most values: names, types, zones
        return value
    if _NULL.match(value):
        return None
    if value in _BOOL:
        return _BOOL[value]
    if _INT.match(value):
        return int(value.replace("_", ""), 0) if value[:2] in ("0o", "0x") else int(value.replace("_", ""))
    if _FLOAT.match(value):
        return float(value.replace("_", ""))
    special = _SPECIAL_FLOAT.get(value.lower())
    return special if special is not None else value


# ----------------------------------------------------------------------------------------------------------
# pydantic errors -> findings

_TYPE_ERRORS = frozenset({
    "int_type", "int_parsing", "int_from_float", "string_type", "list_type", "dict_type", "model_type",
    "model_attributes_type", "bool_type", "bool_parsing", "float_type", "float_parsing", "literal_error",
    "date_type", "date_parsing", "date_from_datetime_parsing", "none_required", "is_instance_of",
})
_MAPPING_ERRORS = frozenset({"dict_type", "model_type", "model_attributes_type"})
_HHMM_PATTERN = r"^([01]\d|2[0-3]):[0-5]\d$"


def _map_validation_errors(exc: ValidationError, data: Any, positions: dict[PathTuple, Position],
                           file: str) -> list[Finding]:
    """Turn pydantic errors into findings at the right line/column, one finding per field path."""
    grouped: dict[PathTuple, list[tuple[dict[str, Any], str | None]]] = {}
    for err in exc.errors(include_url=False):
        path, missing = _strip_loc(err["loc"], data)
        grouped.setdefault(path, []).append((err, missing))
    # A union reports one error per branch: keep those of the branch the input was meant for.
    for path, errs in list(grouped.items()):
        deeper = any(other[: len(path)] == path and len(other) > len(path) for other in grouped)
        specific = [e for e in errs if e[0]["type"] not in _TYPE_ERRORS]
        if specific and len(specific) < len(errs):
            grouped[path] = specific
        elif deeper and all(e[0]["type"] in _TYPE_ERRORS for e in errs) and len(errs) == 1 and \
                _is_union_branch(errs[0][0]["loc"]):
            del grouped[path]
    findings: list[Finding] = []
    for path, errs in grouped.items():
        if len(errs) > 1 and all(e[0]["type"] in _TYPE_ERRORS for e in errs):
            info = _field_info(path, data)
            if info is not None and info.description:
                code = "E012" if all(e[0]["type"] in _MAPPING_ERRORS for e in errs) else "E020"
                findings.append(_at(file, positions, path, code,
                                    f"expected {info.description}, got {_show(_value_at(data, path))}"))
                continue
        seen: set[str] = set()
        for err, missing in errs:
            finding = _one_error(file, positions, path, err, missing, data)
            if finding.message not in seen:
                seen.add(finding.message)
                findings.append(finding)
    return findings


def _is_union_branch(loc: tuple[Any, ...]) -> bool:
    return bool(loc) and isinstance(loc[-1], str) and ("[" in loc[-1] or "-" in loc[-1])


def _strip_loc(loc: tuple[Any, ...], data: Any) -> tuple[PathTuple, str | None]:
    """Drop discriminator tags and union branch labels from a pydantic loc by walking the data.

    Returns the path of existing keys/indexes and, for a missing key, its name.
    """
    path: list[str | int] = []
    current = data
    missing: str | None = None
    for index, part in enumerate(loc):
        if isinstance(current, dict) and isinstance(part, str) and part in current:
            path.append(part)
            current = current[part]
        elif isinstance(current, list) and isinstance(part, int) and 0 <= part < len(current):
            path.append(part)
            current = current[part]
        elif isinstance(current, dict) and isinstance(part, str) and index == len(loc) - 1:
            missing = part
    return tuple(path), missing


def _value_at(data: Any, path: PathTuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _one_error(file: str, positions: dict[PathTuple, Position], path: PathTuple, err: dict[str, Any],
               missing: str | None, data: Any) -> Finding:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    value = _value_at(data, path)
    if kind == "missing" and missing is not None:
        info = _field_info(path + (missing,), data)
        hint = f" ({info.description})" if info is not None and info.description else ""
        return _at(file, positions, path, "E022", f"missing required key '{missing}'{hint}", report=path + (missing,),
                   key=True)
    if kind == "extra_forbidden":
        key = str(path[-1])
        allowed = _allowed_keys(path[:-1], data)
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        listing = f" (allowed: {', '.join(allowed)})" if allowed else ""
        return _at(file, positions, path, "E021", f"unknown key '{key}'{hint}{listing}", key=True)
    if kind in ("unknown_task", "unavailable_task"):
        code = "E023" if kind == "unknown_task" else "E024"
        message = err["msg"] + ("; did you mean '{0}'?".format(m[0]) if kind == "unknown_task" and (
            m := difflib.get_close_matches(str(ctx.get("name")), ctx.get("valid", "").split(", "), n=1)) else "")
        return _at(file, positions, path + ("task",), code, message)
    if kind == "missing_task":
        return _at(file, positions, path, "E022", err["msg"], report=path + ("task",))
    if kind == "union_tag_invalid":
        tag_key = str(ctx.get("discriminator", "'type'")).strip("'")
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        what = "timing type" if tag_key == "type" else tag_key
        return _at(file, positions, path + (tag_key,), "E025",
                   f"unknown {what} '{ctx.get('tag')}'; expected one of: {expected}")
    if kind == "union_tag_not_found":
        tag_key = str(ctx.get("discriminator", "'type'")).strip("'")
        if not isinstance(value, dict):
            return _at(file, positions, path, "E012", f"expected a mapping (key: value pairs), got {_show(value)}")
        return _at(file, positions, path, "E022", f"missing required key '{tag_key}' (one of: "
                                                  f"{', '.join(TIMING_TYPES)})", report=path + (tag_key,), key=True)
    if kind in _MAPPING_ERRORS:
        return _at(file, positions, path, "E012", f"expected a mapping (key: value pairs), got {_show(value)}")
    message = _value_message(kind, ctx, err["msg"], value, path, data)
    if isinstance(value, str) and ":" in value:
        message += _colon_hint(path, data, value)
    return _at(file, positions, path, "E020", message)


def _value_message(kind: str, ctx: dict[str, Any], msg: str, value: Any, path: PathTuple, data: Any) -> str:
    got = _show(value)
    simple = {
        "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
        "bool_type": "true or false", "bool_parsing": "true or false", "string_type": "text",
        "float_type": "a number", "float_parsing": "a number", "list_type": "a list",
        "date_type": "a date YYYY-MM-DD", "date_parsing": "a date YYYY-MM-DD",
        "date_from_datetime_parsing": "a date YYYY-MM-DD",
    }
    if kind in simple:
        return f"expected {simple[kind]}, got {got}{_unquote_hint(kind, value)}"
    bounds = {"greater_than_equal": (">=", "ge"), "less_than_equal": ("<=", "le"),
              "greater_than": (">", "gt"), "less_than": ("<", "lt")}
    if kind in bounds:
        op, key = bounds[kind]
        info = _field_info(path, data)
        extra = f" ({info.description})" if info is not None and info.description else ""
        return f"expected a value {op} {ctx.get(key)}{extra}, got {got}"
    if kind == "string_too_short":
        n = ctx.get("min_length", 1)
        return "must not be empty" if n == 1 else f"expected at least {n} characters, got {len(value)}"
    if kind == "string_too_long":
        return f"expected at most {ctx.get('max_length')} characters, got {len(value)}"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return f"expected at least {n} item{'s' if n != 1 else ''}, got {ctx.get('actual_length', 0)}"
    if kind == "too_long":
        return f"expected at most {ctx.get('max_length')} items, got {ctx.get('actual_length')}"
    if kind == "string_pattern_mismatch":
        if ctx.get("pattern") == _HHMM_PATTERN:
            return f"expected a local time HH:MM (00:00..23:59), got {got}"
        info = _field_info(path, data)
        if info is not None and info.description:
            return f"expected {info.description}, got {got}"
        return f"expected text matching {ctx.get('pattern')}, got {got}"
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected')}, got {got}"
    if kind in ("value_error", "assertion_error"):
        return re.sub(r"^(Value|Assertion) error, ", "", msg)
    return f"{msg}, got {got}"


def _unquote_hint(kind: str, value: Any) -> str:
    """``" (write 7 without quotes)"`` when a number or boolean was written as quoted text, else ``""``.

    Values are validated strictly (the JSON Schema's types): ``keep: "7"`` is text, not the integer 7."""
    if not isinstance(value, str):
        return ""
    bare = _resolve_plain(value.strip()) if value.strip() == value else None
    wanted = {"int_type": int, "int_parsing": int, "float_type": (int, float), "float_parsing": (int, float),
              "bool_type": bool, "bool_parsing": bool}.get(kind)
    if wanted is None or isinstance(bare, bool) is not (wanted is bool) or not isinstance(bare, wanted):
        return ""
    return f" (write {value} without quotes)"


def _at(file: str, positions: dict[PathTuple, Position], path: PathTuple, code: str, message: str,
        report: PathTuple | None = None, key: bool = False) -> Finding:
    """A finding at the value (or key) of ``path``, falling back to the nearest recorded ancestor.

    For a missing key (``key=True`` with ``report`` deeper than ``path``) this is the key of the mapping
    that lacks it (``timing:``), or the item's start for list items and the top level.
    """
    target = path
    while target not in positions and target:
        target = target[:-1]
    pos = positions.get(target, (1, 1, 1, 1))
    line, col = (pos[0], pos[1]) if key else (pos[2], pos[3])
    return Finding(file, line, col, path_str(report if report is not None else path), code, "error", message)


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:57] + "...")
    return str(value)


# ----------------------------------------------------------------------------------------------------------
# model lookup along a data path (for allowed keys and field descriptions)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    origin = get_origin(annotation)
    if origin is Annotated:
        return _models_in(get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        return [m for arg in get_args(annotation) for m in _models_in(arg)]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return []


def _item_annotation(annotation: Any) -> Any:
    origin = get_origin(annotation)
    if origin is Annotated or origin is Union or origin is types.UnionType:
        for arg in get_args(annotation):
            found = _item_annotation(arg)
            if found is not None:
                return found
        return None
    if origin is list:
        return get_args(annotation)[0]
    if origin is dict:
        return get_args(annotation)[1]
    return None


def _pick(models: list[type[BaseModel]], value: Any) -> type[BaseModel] | None:
    """The model of a (discriminated) union that ``value`` is meant for: Literal fields must match."""
    if len(models) == 1:
        return models[0]
    for model in models:
        ok = isinstance(value, dict)
        for name, info in model.model_fields.items():
            if get_origin(info.annotation) is Literal and len(get_args(info.annotation)) == 1:
                ok = ok and value.get(info.alias or name) == get_args(info.annotation)[0]
        if ok:
            return model
    return None


def _field_lookup(path: PathTuple, data: Any) -> tuple[type[BaseModel] | None, Any]:
    """(model owning the last key of ``path``, that key's FieldInfo) or (model at path, None) when path ends
    at a model; (None, None) when the path leaves the models."""
    annotation: Any = Schedule
    current = data
    info = None
    owner: type[BaseModel] | None = None
    for part in path:
        if isinstance(part, int):
            annotation = _item_annotation(annotation)
            info = None
            if annotation is None:
                return None, None
        else:
            owner = _pick(_models_in(annotation), current)
            if owner is None:
                return None, None
            info = next((f for n, f in owner.model_fields.items() if (f.alias or n) == part), None)
            if info is None:
                return None, None
            annotation = info.annotation
        current = current[part] if isinstance(current, (dict, list)) and _has(current, part) else None
    if info is None:
        return _pick(_models_in(annotation), current), None
    return owner, info


def _has(container: Any, part: str | int) -> bool:
    if isinstance(container, dict):
        return part in container
    return isinstance(part, int) and 0 <= part < len(container)


def _field_info(path: PathTuple, data: Any) -> Any:
    """FieldInfo of the field at ``path`` (or None)."""
    owner, info = _field_lookup(path, data)
    return info


def _allowed_keys(path: PathTuple, data: Any) -> list[str]:
    """Keys the model at ``path`` accepts (aliases as written in files)."""
    owner, info = _field_lookup(path, data)
    model = owner if info is None else _pick(_models_in(info.annotation), _value_or_none(data, path))
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _value_or_none(data: Any, path: PathTuple) -> Any:
    try:
        return _value_at(data, path)
    except (KeyError, IndexError, TypeError):
        return None
