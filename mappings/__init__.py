"""Field mappings: the mapping model, its validation against CRM metadata, value conversion,
and the default mapping files ``salesforce.toml`` and ``hubspot.toml``.

``mappings`` knows nothing of ``sync``; the variable catalogue is passed in.
"""
from mappings.model import FieldMapping, MappingFile, ObjectMapping, load_mapping

__all__ = ["FieldMapping", "MappingFile", "ObjectMapping", "load_mapping"]
