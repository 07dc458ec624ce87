"""dream2flow built-in plugins."""
