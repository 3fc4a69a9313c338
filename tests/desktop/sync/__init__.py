"""Tests of applying pulled pages on the desktop (real SQLite files)."""
