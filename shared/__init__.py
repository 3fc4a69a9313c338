"""IntegMed shared domain package: record types, validation and protocol, with no I/O.

`RECORD_SCHEMA_VERSION` changes whenever a synced record's shape changes; `PROTOCOL_VERSION` whenever the
sync wire protocol does. Desktop and server compare them to refuse talking past each other.
"""

RECORD_SCHEMA_VERSION = 1
PROTOCOL_VERSION = 1
