"""Tests of the desktop services over a real local store."""
