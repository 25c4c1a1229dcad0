"""Checking a mapping against the CRM's live field metadata (``closedloop check``)."""
from __future__ import annotations

from typing import Mapping

from adapters.base import FieldSpec
from mappings.model import MappingFile

TEXT_KINDS = {"string", "textarea"}
# How many characters a number or a datetime needs as text (2026-11-24T10:00:00Z, a count or days).
TEXT_FORMS = {"datetime": 20, "number": 10}
# Which CRM field kinds can hold a variable of each kind (values are converted on write).
COMPATIBLE = {
    "string": TEXT_KINDS | {"picklist"},
    "number": TEXT_KINDS | {"number"},
    "datetime": TEXT_KINDS | {"datetime", "date"},
}


def check_against_crm(mapping: MappingFile, describe: Mapping[str, Mapping[str, FieldSpec]],
                      catalogue: Mapping[str, str], enumerations: Mapping[str, frozenset[str]] | None = None,
                      whole_lengths: Mapping[str, int] | None = None) -> list[str]:
    """Every way the mapping cannot work against this CRM, one message per problem:
    unknown object, missing field, read-only field, and the field's type refusing the
    variable's values (:func:`type_problem`). ``describe`` maps object → field name → FieldSpec;
    ``enumerations`` and ``whole_lengths`` describe variables' values (see :func:`type_problem`)."""
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
            refused = type_problem(spec, item.variable, catalogue[item.variable], enumerations.get(item.variable),
                                   (whole_lengths or {}).get(item.variable), item.max_length)
            if refused:
                problem(item.line, f"{where}: {refused}")
    return problems


def type_problem(spec: FieldSpec, variable: str, kind: str, values: frozenset[str] | None = None,
                 whole_length: int | None = None, max_length: int | None = None) -> str | None:
    """Why the CRM would refuse (or mangle) ``variable``'s values in this field, or None.

    ``kind`` is the variable's kind in the catalogue (string, number, datetime); ``values`` its
    closed set of values, if it has one; ``whole_length`` the length its values need whole (an
    identifier cut short matches nobody). Text fields take any kind (values are converted);
    numbers and dates want their own kind; an email field takes no journey variable (the CRM
    refuses anything but an address); a restricted picklist must hold every value; a text
    field (or ``max_length``) shorter than a value that must stay whole cuts it."""
    field_type = spec.crm_type or spec.kind
    if is_email_field(spec):
        return f"an {field_type} field holds only email addresses, and {variable} is not one: map it to a text field"
    if spec.kind not in COMPATIBLE.get(kind, TEXT_KINDS):
        return f"a {kind} variable cannot go into a {field_type} field"
    if spec.kind == "picklist" and spec.restricted_picklist:
        if values is None:
            return "a restricted picklist cannot hold free text; map it to a text field"
        missing = sorted(values - set(spec.picklist_values))
        if missing:
            return f"the restricted picklist lacks values {', '.join(missing)}"
    if spec.kind in TEXT_KINDS:
        needed = max(len(value) for value in values) if values else whole_length or TEXT_FORMS.get(kind)
        limit = min(filter(None, (spec.length, max_length)), default=None)
        if needed and limit and limit < needed:
            return (f"{limit} characters cannot hold {variable}'s values whole (they need {needed}): "
                    f"{'raise max_length' if max_length and max_length < needed else 'lengthen the field'} "
                    f"to {needed} or more")
    return None


def is_email_field(spec: FieldSpec) -> bool:
    """Salesforce Email fields, and HubSpot's ``email`` contact property (validated as an address)."""
    return spec.crm_type == "email" or (spec.name == "email" and spec.crm_type.startswith("string"))
