"""Checking a mapping against the CRM's live field metadata (``closedloop check``).

A name that is not in the CRM is most often a typo. Creating it would leave the CRM with two
near-identical fields and the data in the wrong one, so a missing name close to an existing
field (same but for case or Salesforce's ``__c`` suffix, or a letter or two apart) is reported
as "did you mean ...?" and ``closedloop fields create`` leaves it alone unless forced. Standard
fields and objects cannot be created at all; their typos get the same question.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from rapidfuzz.distance import DamerauLevenshtein

from adapters.base import FieldSpec
from mappings.model import MappingFile

# The objects closedloop reads and writes (sync/jobs/enrich.py PROFILES; a test keeps them equal).
SUPPORTED_OBJECTS = {"salesforce": ("Lead", "Contact", "Opportunity"), "hubspot": ("contacts", "deals")}
HUBSPOT_STANDARD = frozenset({"email", "firstname", "lastname", "phone", "company", "lifecyclestage", "dealname",
                              "amount", "closedate", "dealstage", "pipeline"})

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
            problem(objects.line, unknown_object(mapping.crm, name))
            continue
        mapped = mapped_fields(objects)
        for key, field_name in objects.match.items():
            if field_name not in fields:
                problem(objects.match_line or objects.line,
                        f"{name}.{field_name} (match.{key}): {missing_field(mapping.crm, field_name, fields, mapped)}")
        for item in objects.fields:
            spec = fields.get(item.field)
            where = f"{name}.{item.field} ({item.variable})"
            if spec is None:
                problem(item.line, f"{where}: {missing_field(mapping.crm, item.field, fields, mapped)}")
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


# -- names that are probably typos ----------------------------------------------------------

def is_custom(crm: str, name: str) -> bool:
    """Whether closedloop may create this field: Salesforce custom fields end in __c; on
    HubSpot anything not HubSpot's own (hs_*) and not a default contact/deal property."""
    if crm == "salesforce":
        return name.lower().endswith("__c")  # Salesforce API names ignore case
    return not name.startswith("hs_") and name not in HUBSPOT_STANDARD


def mapped_fields(objects) -> set[str]:
    """Every field an object mapping names (its match fields too): meant to be distinct."""
    return {*objects.match.values(), *objects.field_names}


def close_existing(crm: str, name: str, existing: Iterable[str], mapped: Iterable[str] = ()) -> str | None:
    """The existing field ``name`` is most likely a misspelling of, or None.

    Close means: equal but for case or a missing/extra ``__c`` (Salesforce), else at most one
    edit apart (two for names of ten characters or more; an edit inserts, deletes, replaces or
    swaps two neighbouring characters). Fields the mapping itself names are not candidates: two
    mapped fields that look alike (``cl_gclid``, ``cl_fbclid``) are meant to be different.
    """
    taken = set(mapped) - {name}
    candidates = sorted(field for field in existing if field != name and field not in taken)
    wanted = _normal(crm, name)
    same = [field for field in candidates if _normal(crm, field) == wanted]
    if same:
        return same[0]
    limit = 1 if len(wanted) < 10 else 2
    scored = [(DamerauLevenshtein.distance(wanted, _normal(crm, field), score_cutoff=limit), field)
              for field in candidates]
    best = min((pair for pair in scored if pair[0] <= limit), default=None)
    return best[1] if best else None


def same_field(crm: str, name: str, other: str) -> bool:
    """Whether two spellings name one field: Salesforce API names are case-insensitive."""
    return crm == "salesforce" and name.lower() == other.lower()


def missing_field(crm: str, name: str, existing: Iterable[str], mapped: Iterable[str] = ()) -> str:
    """What to say about a mapped field the CRM does not have, and what to do about it."""
    close = close_existing(crm, name, existing, mapped)
    custom = is_custom(crm, name)
    if close and same_field(crm, name, close):
        return (f"no such field in {crm} as written — did you mean {close!r}? (Salesforce ignores case, so it is "
                "that field; closedloop needs the name exactly as the CRM spells it)")
    if close:
        return f"no such field in {crm} — did you mean {close!r}? " + (
            "(`closedloop fields create` will not create a field this close to an existing one; fix the mapping, "
            "or use --force if both are meant)" if custom else "(a standard field cannot be created)")
    if not custom:
        kind = "it does not end in __c" if crm == "salesforce" else "the name is HubSpot's own"
        return (f"no such field in {crm}, and it is a standard field ({kind}), which `closedloop fields create` "
                "cannot make: check the spelling against the CRM's field list")
    return f"no such field in {crm} — run `closedloop fields create`, and check the integration user can see it"


def unknown_object(crm: str, name: str) -> str:
    """What to say about a mapped object the CRM (or closedloop) does not know."""
    supported = SUPPORTED_OBJECTS.get(crm, ())
    if name in supported:
        return f"object {name!r} does not exist in {crm} (or is not visible to the integration user)"
    close = close_existing(crm, name, supported)
    return (f"object {name!r} is not one closedloop enriches in {crm} ({', '.join(supported)})"
            + (f" — did you mean {close!r}?" if close else ""))


def _normal(crm: str, name: str) -> str:
    name = name.lower()
    return name[:-3] if crm == "salesforce" and name.endswith("__c") else name
