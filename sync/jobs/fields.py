"""Which CRM fields a mapping needs, which are missing, and creating them (``fields create``).

Only custom fields are ever created, and never one whose name is a likely typo of a field the
CRM already has (:func:`mappings.check.close_existing`) unless the admin forces it:
:func:`doubtful_fields` says which mapping lines ``fields create`` will not act on, and why.
"""
from __future__ import annotations

from adapters.base import NewField
from mappings.check import (SUPPORTED_OBJECTS, close_existing, is_custom, mapped_fields, missing_field, same_field,
                            unknown_object)
from mappings.model import MappingFile
from sync.journey.variables import VARIABLES

__all__ = ["MATCH_FIELD_KINDS", "doubtful_fields", "is_custom", "missing_fields"]

# Match fields closedloop may create (hidden-field targets); CRM standard fields never.
MATCH_FIELD_KINDS = {"visitor_id": ("Visitor Id", "closedloop visitor id posted by the form's hidden cl_visitor_id "
                                                  "field"),
                     "ga_client_id": ("GA Client Id", "Google Analytics client id posted by the form's hidden "
                                                      "cl_ga_client_id field")}


def missing_fields(crm: str, mapping: MappingFile, describe, *, force: bool = False) -> list[NewField]:
    """NewField specs for mapped custom fields the CRM does not have (``describe(object)``).
    A name close to an existing field is left out unless ``force``."""
    needed: list[NewField] = []
    for object_name, object_mapping in mapping.objects.items():
        if object_name not in SUPPORTED_OBJECTS.get(crm, ()):
            continue
        existing = describe(object_name)
        mapped = mapped_fields(object_mapping)
        seen: set[str] = set()

        def wanted(name: str) -> bool:
            if name in existing or name in seen or not is_custom(crm, name):
                return False
            close = close_existing(crm, name, existing, mapped)
            return close is None or (force and not same_field(crm, name, close))

        for key, field_name in object_mapping.match.items():
            if key in MATCH_FIELD_KINDS and wanted(field_name):
                label, description = MATCH_FIELD_KINDS[key]
                needed.append(NewField(object_name, field_name, label, "string", description, 255))
                seen.add(field_name)
        for item in object_mapping.fields:
            if not wanted(item.field):
                continue
            spec = VARIABLES[item.variable]
            needed.append(NewField(object_name, item.field, spec.label, spec.kind, spec.description,
                                   min(item.max_length or 255, 255)))
            seen.add(item.field)
    return needed


def doubtful_fields(crm: str, mapping: MappingFile, describe, *, force: bool = False) -> list[str]:
    """One ``file:line: message`` per mapping line ``fields create`` leaves alone: an object
    closedloop does not know, a missing standard field (it cannot be created), and, without
    ``force``, a missing custom field close to an existing one."""
    problems: list[str] = []

    def problem(line: int | None, message: str) -> None:
        problems.append(f"{mapping.path}:{line}: {message}" if line else f"{mapping.path}: {message}")

    for object_name, object_mapping in mapping.objects.items():
        if object_name not in SUPPORTED_OBJECTS.get(crm, ()):
            problem(object_mapping.line, unknown_object(crm, object_name))
            continue
        existing = describe(object_name)
        mapped = mapped_fields(object_mapping)
        named = [(object_mapping.match_line or object_mapping.line, f"match.{key}", name)
                 for key, name in object_mapping.match.items()]
        named += [(item.line, item.variable, item.field) for item in object_mapping.fields]
        for line, role, name in named:
            if name in existing:
                continue
            close = close_existing(crm, name, existing, mapped)
            if not is_custom(crm, name) or (close and (not force or same_field(crm, name, close))):
                problem(line, f"{object_name}.{name} ({role}): not created: "
                              f"{missing_field(crm, name, existing, mapped)}")
    return problems
