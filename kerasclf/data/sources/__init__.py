"""Built-in data sources; importing a module registers it."""
