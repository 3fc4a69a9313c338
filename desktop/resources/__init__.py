"""Data files shipped inside the desktop package (fonts), read with importlib.resources."""
