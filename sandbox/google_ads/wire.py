"""IngestEventsRequest's schema, for reading its proto3 JSON (sandbox/googleapis/protojson.py).

The message and enum definitions are those of ``google/ads/datamanager/v1/*.proto``
(shared/reference/ad-platform-conversions.md §2.3; the same text as the generated types of
``google-ads-datamanager`` 0.9.4), restricted to what an ``events:ingest`` request can carry.
"""
from __future__ import annotations

from typing import Any

from sandbox.googleapis.protojson import ANY
from sandbox.googleapis.protojson import BOOL as B
from sandbox.googleapis.protojson import DOUBLE as D
from sandbox.googleapis.protojson import INT32 as I32
from sandbox.googleapis.protojson import INT64 as I64
from sandbox.googleapis.protojson import STRING as S
from sandbox.googleapis.protojson import TIMESTAMP as TS
from sandbox.googleapis.protojson import PayloadError, Schema, enum_values
from sandbox.googleapis.protojson import parse_body as _parse_body
from sandbox.googleapis.protojson import timestamp_json

__all__ = ["SCHEMA", "PayloadError", "parse_body", "timestamp_json"]

ENUMS = {
    "Encoding": enum_values("ENCODING_UNSPECIFIED", "HEX", "BASE64"),
    "ConsentStatus": enum_values("CONSENT_STATUS_UNSPECIFIED", "CONSENT_GRANTED", "CONSENT_DENIED"),
    "AccountType": enum_values("ACCOUNT_TYPE_UNSPECIFIED", "GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER",
                               "DISPLAY_VIDEO_ADVERTISER", "DATA_PARTNER", "GOOGLE_ANALYTICS_PROPERTY",
                               "GOOGLE_AD_MANAGER_AUDIENCE_LINK", "FLOODLIGHT_CONFIG", "GOOGLE_AD_MANAGER"),
    "Product": enum_values("PRODUCT_UNSPECIFIED", "GOOGLE_ADS", "DISPLAY_VIDEO_PARTNER", "DISPLAY_VIDEO_ADVERTISER",
                           "DATA_PARTNER"),
    # EventSource numbers are not in declaration order (MESSAGE = 6 was added after OTHER = 5).
    "EventSource": enum_values("EVENT_SOURCE_UNSPECIFIED", "WEB", "APP", "IN_STORE", "PHONE", "OTHER", "MESSAGE"),
}

# message → {jsonName: (type, repeated)}; a type is a scalar above, "enum:<Name>" or "msg:<Name>".
MESSAGES: dict[str, dict[str, tuple[str, bool]]] = {
    "IngestEventsRequest": {"destinations": ("msg:Destination", True), "events": ("msg:Event", True),
                            "consent": ("msg:Consent", False), "validateOnly": (B, False),
                            "encoding": ("enum:Encoding", False), "encryptionInfo": ("msg:EncryptionInfo", False)},
    "Destination": {"reference": (S, False), "loginAccount": ("msg:ProductAccount", False),
                    "linkedAccount": ("msg:ProductAccount", False), "operatingAccount": ("msg:ProductAccount", False),
                    "productDestinationId": (S, False)},
    "ProductAccount": {"product": ("enum:Product", False), "accountId": (S, False),
                       "accountType": ("enum:AccountType", False)},
    "Consent": {"adUserData": ("enum:ConsentStatus", False), "adPersonalization": ("enum:ConsentStatus", False)},
    "EncryptionInfo": {"gcpWrappedKeyInfo": (ANY, False), "awsWrappedKeyInfo": (ANY, False)},   # refused in rules
    "Event": {"destinationReferences": (S, True), "transactionId": (S, False), "eventTimestamp": (TS, False),
              "lastUpdatedTimestamp": (TS, False), "userData": ("msg:UserData", False),
              "consent": ("msg:Consent", False), "adIdentifiers": ("msg:AdIdentifiers", False),
              "currency": (S, False), "conversionValue": (D, False), "conversionCount": (D, False),
              "eventSource": ("enum:EventSource", False), "eventDeviceInfo": ("msg:DeviceInfo", False),
              "cartData": ("msg:CartData", False), "customVariables": ("msg:CustomVariable", True),
              "eventName": (S, False), "clientId": (S, False), "userId": (S, False),
              "eventLocation": ("msg:EventLocation", False), "appInstanceId": (S, False)},
    "AdIdentifiers": {"sessionAttributes": (S, False), "gclid": (S, False), "gbraid": (S, False),
                      "wbraid": (S, False), "landingPageDeviceInfo": ("msg:DeviceInfo", False),
                      "mobileDeviceId": (S, False), "dclid": (S, False), "impressionId": (S, False),
                      "matchId": (S, False), "ppid": (S, False), "visitorPpid": (S, False)},
    "UserData": {"userIdentifiers": ("msg:UserIdentifier", True)},
    "UserIdentifier": {"emailAddress": (S, False), "phoneNumber": (S, False), "address": ("msg:AddressInfo", False)},
    "AddressInfo": {"givenName": (S, False), "familyName": (S, False), "regionCode": (S, False),
                    "postalCode": (S, False), "addressLine": (S, False), "city": (S, False),
                    "administrativeArea": (S, False)},
    "DeviceInfo": {"userAgent": (S, False), "ipAddress": (S, False), "category": (S, False),
                   "languageCode": (S, False), "screenHeight": (I32, False), "screenWidth": (I32, False),
                   "operatingSystem": (S, False), "operatingSystemVersion": (S, False), "model": (S, False),
                   "brand": (S, False), "browser": (S, False), "browserVersion": (S, False)},
    "CartData": {"merchantId": (S, False), "merchantFeedLabel": (S, False), "merchantFeedLanguageCode": (S, False),
                 "transactionDiscount": (D, False), "items": ("msg:Item", True), "couponCodes": (S, True)},
    "Item": {"merchantProductId": (S, False), "quantity": (I64, False), "unitPrice": (D, False), "itemId": (S, False),
             "merchantId": (S, False), "conversionValue": (D, False)},
    "CustomVariable": {"variable": (S, False), "value": (S, False), "destinationReferences": (S, True)},
    "EventLocation": {"storeId": (S, False), "city": (S, False), "subdivisionCode": (S, False),
                      "regionCode": (S, False), "subcontinentCode": (S, False), "continentCode": (S, False)},
    "RetrieveRequestStatusRequest": {"requestId": (S, False)},
}
SCHEMA = Schema("google.ads.datamanager.v1", MESSAGES, ENUMS)


def parse_body(body: bytes, message: str = "IngestEventsRequest") -> dict[str, Any]:
    return _parse_body(body, message, SCHEMA)
