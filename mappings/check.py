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
