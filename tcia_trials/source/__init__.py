"""Reading TCIA downloads."""
