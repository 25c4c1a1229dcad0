"""Checking a mapping against the CRM's live field metadata (``closedloop check``)."""
from __future__ import annotations

from typing import Mapping

from adapters.base import FieldSpec
from mappings.model import MappingFile

TEXT_KINDS = {"string", "textarea"}
# Which CRM field kinds can hold a variable of each kind (values are converted on write).
COMPATIBLE = {
    "string": TEXT_KINDS | {"picklist"},
    "number": TEXT_KINDS | {"number"},
    "datetime": TEXT_KINDS | {"datetime", "date"},
}


def check_against_crm(mapping: MappingFile, describe: Mapping[str, Mapping[str, FieldSpec]],
                      catalogue: Mapping[str, str], enumerations: Mapping[str, frozenset[str]] | None = None
                      ) -> list[str]:
    """Every way the mapping cannot work against this CRM, one message per problem:
    unknown object, missing field, read-only field, type mismatch, restricted picklist that
    cannot hold the variable's values. ``describe`` maps object → field name → FieldSpec."""
    enumerations = enumerations or {}
    problems = []

    def problem(line: int | None, message: str) -> None:
        problems.append(f"{mapping.path}:{line}: {message}" if line else f"{mapping.path}: {message}")

    for name, objects in mapping.objects.items():
        fields = describe.get(name)
        if fields is None:
            problem(objects.line, f"object {name!r} does not exist in {mapping.crm} (or is not visible to "
                                  "the integration user)")
            continue
        for key, field_name in objects.match.items():
            if field_name not in fields:
                problem(objects.line, f"{name}.{field_name} (match.{key}): no such field in {mapping.crm}")
        for item in objects.fields:
            spec = fields.get(item.field)
            where = f"{name}.{item.field} ({item.variable})"
            if spec is None:
                problem(item.line, f"{where}: no such field in {mapping.crm} — run `closedloop fields create`, and "
                                   "check the integration user can see it")
                continue
            if not spec.updateable:
                problem(item.line, f"{where}: the field is read-only (formula, system or no edit permission)")
                continue
            kind = catalogue[item.variable]
            if spec.kind not in COMPATIBLE.get(kind, TEXT_KINDS):
                problem(item.line, f"{where}: a {kind} variable cannot go into a {spec.crm_type or spec.kind} field")
                continue
            if spec.kind == "picklist" and spec.restricted_picklist:
                values = enumerations.get(item.variable)
                missing = sorted(values - set(spec.picklist_values)) if values else None
                if values is None:
                    problem(item.line, f"{where}: a restricted picklist cannot hold free text; map it to a "
                                       "text field")
                elif missing:
                    problem(item.line, f"{where}: the restricted picklist lacks values {', '.join(missing)}")
    return problems
