"""callsim: a synthetic call-traffic simulator for AI voice agents.

Personas -> call scripts -> degradation -> concurrent replay against an agent endpoint ->
run store -> the four eval-gate numbers.
"""

from __future__ import annotations

__version__ = "0.1.0"
