"""Phone numbers in E.164, the one form both ad platforms start their own normalisation from.

CRM phone fields hold whatever a person typed ("(800) 555-0100", "0171 1234567"). Google wants
``+`` and digits with the country code, Meta the same digits without ``+`` (reference
``ad-platform-conversions.md`` §7); neither vendor's normaliser adds a missing country code,
so ``phonenumbers`` (Google's libphonenumber) does, with the configured default region.
"""
from __future__ import annotations

import phonenumbers


def e164(phone: str | None, default_region: str) -> str | None:
    """``+`` country code and number, or None when it is not a possible phone number."""
    if not phone or not phone.strip():
        return None
    try:
        number = phonenumbers.parse(phone, default_region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
