"""Stand-in models package (tests only)."""
