"""scratchformers (data branch placeholder: the main branch's ``__init__.py``, which registers the models, replaces it)."""
