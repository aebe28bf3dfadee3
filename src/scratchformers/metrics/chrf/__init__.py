"""Folder of the local evaluate module ``chrf.py`` (a package only so that wheels ship the script)."""
