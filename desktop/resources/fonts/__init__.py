"""Bundled Noto Sans fonts (SIL OFL 1.1, see OFL.txt and README.txt here); registered by desktop.ui.fonts."""
