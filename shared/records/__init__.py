"""Record types: one module per record kind (pydantic v2)."""
