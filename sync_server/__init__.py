"""IntegMed central sync server (FastAPI + asyncpg on PostgreSQL)."""
