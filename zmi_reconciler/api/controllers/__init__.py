"""Litestar controllers, one module per resource; shared request helpers live here."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from zmi_reconciler.api.problems import PROBLEM_MEDIA_TYPE, BadRequest, Invalid, Problem, UnsupportedMediaType

from zmi_reconciler.api.service import ScheduleService

#: The per-app service, injected by name (``dependencies={"service": ...}`` in :func:`create_app`).
Service = NamedDependency[ScheduleService]
JSON_TYPES = frozenset({"application/json", "application/merge-patch+json"})
#: Deepest nesting of a JSON body (the loader's limit for files, ``loader.MAX_DEPTH``).
MAX_BODY_DEPTH = 64
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})
_DESCRIPTIONS = {
    400: "malformed request (bad JSON, bad query parameter)",
    401: "no token or unknown token",
    403: "the token has the read role; this needs write",
    404: "no such schedule or run (also for ids that are not legal)",
    409: "conflict: the schedule exists, is not loaded, or a run is active (`active_run`)",
    412: "If-Match does not name the file's current ETag",
    413: "request body larger than the server's max_request_bytes",
    415: "unsupported Content-Type",
    422: "the document is not valid: `errors` lists every error with field path, line and column",
    428: "If-Match is required",
    503: "not ready",
}


def problems(*codes: int, descriptions: dict[int, str] | None = None) -> dict[int, ResponseSpec]:
    """``responses=`` entries documenting problem+json answers for ``codes`` (plus 401 always);
    ``descriptions`` replaces the default description of some codes (other resources than schedules)."""
    texts = {**_DESCRIPTIONS, **(descriptions or {})}
    return {code: ResponseSpec(data_container=Problem, description=texts[code], media_type=PROBLEM_MEDIA_TYPE,
                               generate_examples=False)
            for code in sorted({401, 400, *codes})}


def media_type(request: Request[Any, Any, Any]) -> str:
    return request.headers.get("content-type", "application/json").split(";")[0].strip().lower()


async def read_text(request: Request[Any, Any, Any]) -> str:
    """The body as UTF-8 text (413 beyond the server's limit, enforced by Litestar)."""
    raw = await request.body()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the body is not UTF-8") from None


async def read_document(request: Request[Any, Any, Any], *, allow_yaml: bool, optional: bool = False) -> Any:
    """The body parsed by Content-Type: JSON (and merge-patch+json), or YAML where ``allow_yaml``.
    Empty body: None when ``optional``, else 400."""
    text = await read_text(request)
    if not text.strip():
        if optional:
            return None
        raise BadRequest("the request needs a body")
    kind = media_type(request)
    if kind in JSON_TYPES or kind.endswith("+json"):
        try:
            document = json.loads(text)
        except RecursionError:
            raise BadRequest(f"the body nests deeper than {MAX_BODY_DEPTH} levels") from None
        except ValueError as exc:
            raise BadRequest(f"the body is not valid JSON: {exc}") from None
        check_depth(document)
        return document
    if allow_yaml and kind in YAML_TYPES:
        return parse_yaml(text)
    raise UnsupportedMediaType(f"Content-Type {kind!r} is not accepted here; send application/json"
                               + (" or application/yaml" if allow_yaml else ""))


def check_depth(document: Any, limit: int = MAX_BODY_DEPTH) -> None:
    """400 when lists/objects in ``document`` nest deeper than ``limit`` (the loader's ``MAX_DEPTH``), checked
    without recursion so that no later step (merge, validation, dump) can hit Python's recursion limit."""
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > limit:
                raise BadRequest(f"the body nests deeper than {limit} levels")
            stack.extend((v, depth + 1) for v in (value.values() if isinstance(value, dict) else value))


#: Finding codes of the loader that make a YAML body unusable before any merge or model work.
_YAML_BODY_REJECT = frozenset({"E005", "E007", "E008", "E009", "E010", "E013", "E014"})


def parse_yaml(text: str) -> Any:
    """Plain data of a YAML text; 422 with the loader's finding (E007 syntax with position, E010 alias bomb,
    E014 nesting, E008 duplicate key, E009 several documents, E013 tag). The text goes through the loader's
    guards first, so an alias bomb is rejected before ruamel builds (and ``to_plain`` expands) it."""
    from zmi_reconciler import loader
    from zmi_reconciler.api.problems import FieldError
    from zmi_reconciler.api.yamlio import to_plain

    findings = [f for f in loader.load_schedule_text(text, "body.yaml").findings if f.code in _YAML_BODY_REJECT]
    if findings:
        raise Invalid("the body is not a usable YAML document", [
            FieldError(path=f.path or "", line=max(f.line, 0), column=max(f.column, 0), code=f.code,
                       message=f.message) for f in findings])
    try:
        return to_plain(YAML(typ="safe", pure=True).load(text))
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        raise Invalid("the body is not valid YAML", [FieldError(path="", line=line, column=col, code="E007",
                                                                message=str(getattr(exc, "problem", exc)))]) from None
