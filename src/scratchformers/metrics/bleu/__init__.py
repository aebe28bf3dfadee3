"""Folder of the local evaluate module ``bleu.py`` (a package only so that wheels ship the script)."""
