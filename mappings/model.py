"""Field mappings: which closedloop variable goes into which CRM field, and how.

A mapping file is TOML owned by the RevOps admin::

    crm = "salesforce"

    [[object]]
    object = "Lead"
    # CRM fields that tell closedloop which web visitor a record belongs to
    match = { visitor_id = "CL_Visitor_Id__c", ga_client_id = "CL_GA_Client_Id__c", email = "Email" }

    [object.fields]
    first_click_channel = "CL_First_Click_Channel__c"             # policy from the variable
    last_click_source = { field = "CL_Last_Click_Source__c", policy = "overwrite", max_length = 80 }

Policies: ``fill_empty`` writes only into an empty field and never again (first touch never
changes once set, even after a rep edits it); ``overwrite`` keeps the field equal to the
latest computed value. First-click and identity variables default to ``fill_empty``, the rest
to ``overwrite``. Every problem names the file, the line and the field.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from adapters.errors import MappingError

POLICIES = ("overwrite", "fill_empty")
MATCH_KEYS = ("visitor_id", "ga_client_id", "email")
FILL_EMPTY_BY_DEFAULT = re.compile(r"^(first_click_.*|visitor_id|ga_client_id|first_visit_at)$")


@dataclass(frozen=True)
class FieldMapping:
    variable: str
    field: str
    policy: str
    max_length: int | None = None
    line: int | None = None


@dataclass
class ObjectMapping:
    object: str
    fields: list[FieldMapping] = field(default_factory=list)
    match: dict[str, str] = field(default_factory=dict)
    line: int | None = None
    match_line: int | None = None

    @property
    def field_names(self) -> list[str]:
        return [mapping.field for mapping in self.fields]


@dataclass
class MappingFile:
    path: str
    crm: str
    objects: dict[str, ObjectMapping]

    def get(self, object_name: str) -> ObjectMapping | None:
        return self.objects.get(object_name)


def load_mapping(path: str | Path, catalogue: Mapping[str, str], *, crm: str | None = None) -> MappingFile:
    """Parse and check a mapping file against the variable ``catalogue`` (name → kind).

    Raises :class:`MappingError` listing every problem, one per line, each naming the file,
    line and field. Whether the CRM has the fields is checked separately, against live
    metadata (:func:`mappings.check.check_against_crm`).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(f"cannot read mapping file ({exc.strerror})", path=str(path)) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(f"not valid TOML: {exc}", path=str(path)) from None
    lines = _LineIndex(text)
    problems: list[str] = []

    def problem(message: str, line: int | None) -> None:
        problems.append(f"{path}:{line}: {message}" if line else f"{path}: {message}")

    declared_crm = raw.get("crm")
    if crm is not None and declared_crm not in (None, crm):
        problem(f"crm = {declared_crm!r}, but this file is configured for {crm}", lines.key(None, "crm"))
    for key in set(raw) - {"crm", "object"}:
        problem(f"unknown key {key!r} (expected crm and [[object]] tables)", lines.key(None, key))
    objects: dict[str, ObjectMapping] = {}
    tables = raw.get("object", [])
    if not isinstance(tables, list) or not tables:
        problem("no [[object]] tables: nothing is mapped", None)
        tables = []
    for index, table in enumerate(tables):
        header = lines.object_header(index)
        name = table.get("object")
        if not isinstance(name, str) or not name:
            problem("[[object]] needs object = \"<CRM object name>\"", header)
            continue
        if name in objects:
            problem(f"object {name!r} is mapped twice", header)
            continue
        mapping = ObjectMapping(object=name, line=header, match_line=lines.key(index, "match"))
        for key in set(table) - {"object", "match", "fields"}:
            problem(f"{name}: unknown key {key!r} (expected object, match, fields)", lines.key(index, key))
        match = table.get("match", {})
        if not isinstance(match, dict):
            problem(f"{name}: match must be a table like {{ visitor_id = \"Field\" }}", lines.key(index, "match"))
            match = {}
        for key, value in match.items():
            if key not in MATCH_KEYS:
                problem(f"{name}: match key {key!r} is not one of {', '.join(MATCH_KEYS)}", lines.key(index, "match"))
            elif not isinstance(value, str) or not value:
                problem(f"{name}: match.{key} must be a field name", lines.key(index, "match"))
            else:
                mapping.match[key] = value
        fields = table.get("fields", {})
        if not isinstance(fields, dict):
            problem(f"{name}: fields must be a table", lines.key(index, "fields"))
            fields = {}
        seen_fields: dict[str, str] = {}
        for variable, spec in fields.items():
            line = lines.field(index, variable)
            parsed = _parse_field(variable, spec, catalogue, line, name, problem)
            if parsed is None:
                continue
            if parsed.field in seen_fields:
                problem(f"{name}.{parsed.field}: receives both {seen_fields[parsed.field]} and {variable}", line)
                continue
            seen_fields[parsed.field] = variable
            mapping.fields.append(parsed)
        objects[name] = mapping
    if problems:
        raise MappingError("\n".join(problems))
    return MappingFile(path=str(path), crm=declared_crm or crm or "", objects=objects)


def _parse_field(variable, spec, catalogue, line, object_name, problem) -> FieldMapping | None:
    if variable not in catalogue:
        suggestion = _closest(variable, catalogue)
        problem(f"{object_name}: unknown variable {variable!r}" + (f" (did you mean {suggestion!r}?)" if suggestion
                                                                    else ""), line)
        return None
    default_policy = "fill_empty" if FILL_EMPTY_BY_DEFAULT.match(variable) else "overwrite"
    if isinstance(spec, str):
        return FieldMapping(variable, spec, default_policy, None, line) if spec else \
            problem(f"{object_name}.{variable}: empty field name", line)
    if not isinstance(spec, dict):
        problem(f"{object_name}.{variable}: expected a field name or {{ field = ..., policy = ..., max_length = ... }}",
                line)
        return None
    unknown = set(spec) - {"field", "policy", "max_length"}
    if unknown:
        problem(f"{object_name}.{variable}: unknown option(s) {', '.join(sorted(unknown))}", line)
        return None
    target = spec.get("field")
    policy = spec.get("policy", default_policy)
    max_length = spec.get("max_length")
    if not isinstance(target, str) or not target:
        problem(f"{object_name}.{variable}: field = \"<CRM field name>\" is required", line)
        return None
    if policy not in POLICIES:
        problem(f"{object_name}.{variable}: policy must be \"overwrite\" or \"fill_empty\"", line)
        return None
    if max_length is not None and (not isinstance(max_length, int) or isinstance(max_length, bool)
                                   or not 1 <= max_length <= 131_072):
        problem(f"{object_name}.{variable}: max_length must be a whole number from 1 to 131072", line)
        return None
    return FieldMapping(variable, target, policy, max_length, line)


def _closest(name: str, options) -> str | None:
    import difflib

    matches = difflib.get_close_matches(name, list(options), n=1, cutoff=0.75)
    return matches[0] if matches else None


class _LineIndex:
    """Line numbers of keys in a mapping file (tomllib keeps none)."""

    _header = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
    _key = re.compile(r"^\s*(\"[^\"]+\"|'[^']+'|[A-Za-z0-9_.-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.objects: list[int] = []
        self.keys: dict[tuple[int | None, str, str], int] = {}
        index: int | None = None
        table = ""
        for number, line in enumerate(text.splitlines(), start=1):
            header = self._header.match(line)
            if header:
                name = header.group(2).strip()
                if header.group(1) == "[[" and name == "object":
                    self.objects.append(number)
                    index, table = len(self.objects) - 1, "object"
                else:
                    table = name
                continue
            key = self._key.match(line)
            if key:
                self.keys.setdefault((index, table, key.group(1).strip("\"'")), number)

    def object_header(self, index: int) -> int | None:
        return self.objects[index] if index < len(self.objects) else None

    def key(self, index: int | None, key: str) -> int | None:
        return self.keys.get((index, "object" if index is not None else "", key)) or self.object_header(index or 0)

    def field(self, index: int, variable: str) -> int | None:
        return self.keys.get((index, "object.fields", variable)) or self.object_header(index)
