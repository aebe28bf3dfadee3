"""scratchformers (placeholder on the data branch: main's `__init__.py`, which registers the models, replaces it)."""
