"""Versioned clinical knowledge files (formulary, interactions, conditions), each row naming its source.

This package holds data only; it is a package so that `importlib.resources.files("shared.knowledge")` finds
the files inside an installed wheel or a PyInstaller bundle as well as in a source checkout.
"""
