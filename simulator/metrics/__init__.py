"""Grading of replayed calls and the run-level numbers computed from them."""
