"""Tests of the local store (real SQLite files)."""
