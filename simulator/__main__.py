"""``python -m simulator`` runs the ``callsim`` command."""

from simulator.cli import main

main(prog_name="callsim")
