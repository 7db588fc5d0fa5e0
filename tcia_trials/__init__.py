"""tcia-trials."""
