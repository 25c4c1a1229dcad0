"""CRM adapters: one small declarative module per CRM behind one interface.

``adapters`` and ``mappings`` know nothing of ``sync``; the daemon drives them.
"""
