"""Builder specs, one module per labeled trial collection (data only)."""
