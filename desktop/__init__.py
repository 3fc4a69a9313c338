"""IntegMed desktop app (PySide6) on a local SQLite store."""
