"""Every call on record: the call store (calls/store.py) and its tables (calls/models.py)."""
