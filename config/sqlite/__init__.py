"""Django's SQLite backend, with writers taking turns without SQLite's naps
(see base.py)."""
