"""Run storage: one SQLite store per run (every call, turn and event, written as each call
finishes) and the index of all runs under a runs directory."""
