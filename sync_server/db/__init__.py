"""SQL lives here: one module per record kind, plain asyncpg."""
