"""Reports of stored runs: a self-contained HTML file for people, a JSON dict for machines.

``render_html`` / ``write_report`` (:mod:`.html`) draw one run, optionally against a
baseline run and a gate result; ``report_json`` (:mod:`.data`) returns the same data as
plain JSON. Both read only the run store, so they work on partial runs.
"""

from __future__ import annotations

from simulator.reports.data import collect, report_json
from simulator.reports.html import render_html, write_report

__all__ = ["collect", "render_html", "report_json", "write_report"]
