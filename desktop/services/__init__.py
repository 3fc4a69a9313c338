"""Use cases the UI and the CLI call: plain Python over `desktop.store`, no PySide6."""
