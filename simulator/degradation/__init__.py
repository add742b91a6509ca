"""The degradation layer: named noise profiles turn clean call scripts into realistic
ones (ASR noise at a calibrated WER, conversational perturbations, tool faults)."""

from __future__ import annotations

from simulator.degradation.calibrate import (
    ProfileCalibration,
    RateCheck,
    calibrate,
    render_calibration,
)
from simulator.degradation.engine import degrade_call, degrade_calls
from simulator.degradation.faults import FaultEffect, apply_fault, fault_schedule
from simulator.degradation.profile import NoiseProfile, get_profile, load_profiles

__all__ = [
    "FaultEffect", "NoiseProfile", "ProfileCalibration", "RateCheck", "apply_fault",
    "calibrate", "degrade_call", "degrade_calls", "fault_schedule", "get_profile",
    "load_profiles", "render_calibration",
]
