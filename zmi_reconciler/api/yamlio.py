"""Round-trip write-back of schedule files (ruamel.yaml): API edits become small, reviewable diffs.

The rule: everything the request does not change keeps its bytes (comments, key order, quoting, blank lines,
flow style). :func:`replace_document` deep-merges a new document into the loaded ``CommentedMap`` (changed
scalars are updated in place, keys added or removed, lists and maps replaced only where they differ);
:func:`merge_patch` applies an RFC 7396 JSON merge patch the same way. New files come from
:func:`new_document_text` with the ``$schema`` modeline. :func:`atomic_write` puts the bytes on disk with
temp file + fsync + ``os.replace`` + directory fsync, keeping the file mode.

Indentation is guessed from the file (mapping indent, sequence indent and dash offset), so an unchanged
document dumps back to the same bytes. When it would not (odd layouts), edits that only replace top-level
scalars fall back to replacing the scalar's token in the original text, so a pause still changes one line.
"""

from __future__ import annotations

import io
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import DoubleQuotedScalarString, SingleQuotedScalarString

from zmi_reconciler.durable import fsync_dir
from zmi_reconciler.schema import parse_duration

MODELINE = "# yaml-language-server: $schema=../openapi/schedule.schema.json\n"
#: Top-level key order of new files and of keys added to existing ones (SPEC section 2).
CANONICAL_ORDER = ("name", "description", "enabled", "timezone", "timing", "catch_up", "overlap", "exclude",
                   "skip_holidays", "tasks")
#: Strings that YAML 1.1 readers would take for numbers (``05:00`` is sexagesimal there): always quoted.
_AMBIGUOUS = re.compile(r"^(\d+(:\d+)*|[-+]?\d*\.\d*|yes|no|on|off|y|n|true|false|null|~)$", re.IGNORECASE)


class YamlSyntaxError(ValueError):
    """The text is not YAML or its top level is not a mapping; ``line``/``column`` are 1-based."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(message)
        self.line = line
        self.column = column


class Layout:
    """Indentation of one file: mapping indent, sequence indent and dash offset (ruamel's three numbers)."""

    def __init__(self, mapping: int = 2, sequence: int = 4, offset: int = 2) -> None:
        self.mapping, self.sequence, self.offset = mapping, sequence, offset

    @classmethod
    def guess(cls, text: str) -> "Layout":
        """Guess from the first nested mapping and the first block sequence; defaults 2/4/2."""
        mapping = offset = None
        lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
        for parent, child in zip(lines, lines[1:]):
            p_ind = len(parent) - len(parent.lstrip(" "))
            c_ind = len(child) - len(child.lstrip(" "))
            p_body = parent.strip()
            if p_body.startswith("- "):
                continue
            if not re.match(r"^[^#{\[]*:\s*(#.*)?$", p_body) or c_ind < p_ind:
                continue
            if child.lstrip().startswith("- "):
                offset = c_ind - p_ind if offset is None else offset
            elif c_ind > p_ind:
                mapping = c_ind - p_ind if mapping is None else mapping
            if mapping is not None and offset is not None:
                break
        mapping = mapping or 2
        offset = 2 if offset is None else offset
        return cls(mapping, offset + 2, offset)


def _yaml(layout: Layout) -> YAML:
    y = YAML()  # round-trip
    y.preserve_quotes = True
    y.brace_single_entry_mapping_in_flow_sequence = True  # tasks: [{task: x}] stays so, not [task: x]
    y.width = 4096
    y.indent(mapping=layout.mapping, sequence=layout.sequence, offset=layout.offset)
    return y


def load(text: str) -> CommentedMap:
    """Parse ``text`` round-trip. Raises :class:`YamlSyntaxError` (with position) when it is not a mapping."""
    try:
        data = _yaml(Layout()).load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise YamlSyntaxError(f"not valid YAML: {getattr(exc, 'problem', None) or exc}", line, col) from None
    if not isinstance(data, CommentedMap):
        raise YamlSyntaxError("a schedule file must be a YAML mapping at the top level")
    return data


def dump(data: CommentedMap, layout: Layout) -> str:
    """Dump a round-trip document with ``layout``."""
    out = io.StringIO()
    _yaml(layout).dump(data, out)
    return out.getvalue()


def to_plain(value: Any) -> Any:
    """ruamel nodes -> plain dict/list/str/int/float/bool/None (for comparison and validation)."""
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    return value


def _same(old: Any, new: Any) -> bool:
    """Equal as plain data, with ``True`` != ``1`` (bool is a distinct YAML type)."""
    old, new = to_plain(old), to_plain(new)
    if isinstance(old, bool) != isinstance(new, bool):
        return False
    if isinstance(old, dict) and isinstance(new, dict):
        return old.keys() == new.keys() and all(_same(old[k], new[k]) for k in old)
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(_same(a, b) for a, b in zip(old, new))
    if {type(old), type(new)} == {str, int}:  # a duration written "30m" and sent back as 1800 seconds
        text, number = (old, new) if isinstance(old, str) else (new, old)
        try:
            return parse_duration(text) == number
        except ValueError:
            return False
    return type(old) is type(new) and old == new or (
        isinstance(old, (int, float)) and isinstance(new, (int, float)) and not isinstance(old, bool) and old == new)


def to_node(value: Any, like: Any = None) -> Any:
    """Plain JSON value -> ruamel node. Strings keep the quoting style of ``like`` (the value they replace);
    strings a YAML 1.1 reader would misread (``05:00``) are double-quoted."""
    if isinstance(value, dict):
        node = CommentedMap()
        for k, v in value.items():
            if v is not None:
                node[k] = to_node(v)
        return node
    if isinstance(value, list):
        seq = CommentedSeq(to_node(v) for v in value)
        if all(not isinstance(v, (dict, list)) for v in value) and value:
            seq.fa.set_flow_style()  # short scalar lists read better inline: days: [mon, fri]
        return seq
    if isinstance(value, str):
        if isinstance(like, SingleQuotedScalarString):
            return SingleQuotedScalarString(value)
        if isinstance(like, DoubleQuotedScalarString) or _AMBIGUOUS.match(value) or value != value.strip():
            return DoubleQuotedScalarString(value)
        return value
    return value


def _insert_position(target: CommentedMap, key: str, order: tuple[str, ...]) -> int:
    """Index at which a new ``key`` goes: after the last present key that precedes it in ``order``."""
    if key not in order:
        return len(target)
    rank = order.index(key)
    position = 0
    for i, existing in enumerate(target):
        if existing in order and order.index(existing) < rank:
            position = i + 1
    return position


def _set(target: CommentedMap, key: str, value: Any, order: tuple[str, ...]) -> None:
    if key in target:
        old = target[key]
        if _same(old, value):
            return
        if isinstance(old, CommentedMap) and isinstance(value, dict):
            _merge_map(old, value, ())
        elif isinstance(old, CommentedSeq) and isinstance(value, list):
            _merge_seq(old, value)
        else:
            target[key] = to_node(value, like=old)
    else:
        target.insert(_insert_position(target, key, order), key, to_node(value))


def _merge_map(target: CommentedMap, new: dict[str, Any], order: tuple[str, ...]) -> None:
    for key in [k for k in target if k not in new or new[k] is None]:
        del target[key]
    for key, value in new.items():
        if value is not None:
            _set(target, key, value, order)


def _merge_seq(target: CommentedSeq, new: list[Any]) -> None:
    for i, value in enumerate(new[: len(target)]):
        old = target[i]
        if _same(old, value):
            continue
        if isinstance(old, CommentedMap) and isinstance(value, dict):
            _merge_map(old, value, ())
        elif isinstance(old, CommentedSeq) and isinstance(value, list):
            _merge_seq(old, value)
        else:
            target[i] = to_node(value, like=old)
    del target[len(new):]
    for value in new[len(target):]:
        target.append(to_node(value))


def _patch_map(target: CommentedMap, patch: dict[str, Any], order: tuple[str, ...]) -> None:
    """RFC 7396 on a round-trip map: null deletes, objects recurse, everything else replaces."""
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), CommentedMap):
            _patch_map(target[key], value, ())
        elif isinstance(value, dict):
            if key in target:
                del target[key]
            _set(target, key, _strip_nulls(value), order)
        else:
            _set(target, key, value, order)


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    return value


def replace_document(text: str, new: dict[str, Any]) -> str:
    """PUT: ``text`` rewritten so that it holds ``new``, with unchanged parts byte-identical.

    ``None`` values mean "absent". Raises :class:`YamlSyntaxError` when ``text`` is not a YAML mapping.
    """
    return _edit(text, lambda doc: _merge_map(doc, new, CANONICAL_ORDER))


def merge_patch(text: str, patch: dict[str, Any]) -> str:
    """PATCH (RFC 7396 JSON merge patch) applied to the file ``text``; unchanged parts byte-identical."""
    return _edit(text, lambda doc: _patch_map(doc, patch, CANONICAL_ORDER))


def _edit(text: str, change: Any) -> str:
    layout = Layout.guess(text)
    doc = load(text)
    before = to_plain(doc)
    positions = {k: doc.lc.value(k) for k in doc if not isinstance(doc[k], (dict, list))}
    originals = {k: doc[k] for k in positions}
    change(doc)
    new_text = dump(doc, layout)
    if dump(load(text), layout) == text:
        return new_text
    # Round trip is not byte-exact for this file: try a token replacement for top-level scalar changes.
    surgical = _replace_scalars(text, before, to_plain(doc), doc, positions, originals)
    return surgical if surgical is not None else new_text


def _replace_scalars(text: str, before: dict[str, Any], after: dict[str, Any], doc: CommentedMap,
                     positions: dict[str, tuple[int, int]], originals: dict[str, Any]) -> str | None:
    if before.keys() != after.keys():
        return None
    lines = text.splitlines(keepends=True)
    for key in before:
        if _same(before[key], after[key]):
            continue
        if key not in positions or isinstance(after[key], (dict, list)):
            return None
        line, col = positions[key]
        source = lines[line]
        match = re.match(r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|[^#\n]*?)(\s+#.*)?(\r?\n)?$", source[col:])
        if match is None or not match.group(1):
            return None
        token = _dump_scalar(doc[key], originals[key])
        if token is None:
            return None
        lines[line] = source[:col] + token + (match.group(2) or "") + (match.group(3) or "")
    return "".join(lines)


def _dump_scalar(value: Any, like: Any) -> str | None:
    out = dump(CommentedMap([("k", to_node(to_plain(value), like=like))]), Layout()).rstrip("\n")
    if "\n" in out or not out.startswith("k: "):
        return None
    return out[3:]


def new_document_text(document: dict[str, Any]) -> str:
    """A new schedule file for ``document`` (plain JSON data): modeline, canonical key order, quoted times."""
    ordered = CommentedMap()
    for key in CANONICAL_ORDER:
        if document.get(key) is not None:
            ordered[key] = to_node(document[key])
    for key, value in document.items():
        if key not in ordered and value is not None:
            ordered[key] = to_node(value)
    return MODELINE + dump(ordered, Layout())


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same directory, fsync, ``os.replace``, fsync of
    the directory. An existing file's mode is kept (new files: 0644 minus umask semantics of mkstemp -> 0644).
    Raises ``OSError``; on failure the old file is untouched and the temp file removed."""
    directory = path.parent
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = 0o644
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    fsync_dir(directory)
