"""The engine: the only door to the store. Every state change of a run goes through it,
checked against the transition table (`states`)."""
