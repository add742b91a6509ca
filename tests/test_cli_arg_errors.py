"""``callsim agent serve --arg-error-rate``: one rate for every pack, or PACK=RATE."""

from __future__ import annotations

import pytest

from simulator.cli import _arg_error_rates
from simulator.errors import InputError
from simulator.personas import load_packs


def test_plain_rate_and_per_pack_overrides() -> None:
    packs = load_packs()
    assert _arg_error_rates(["0.1"], packs) == (0.1, ())
    assert _arg_error_rates(["healthcare=0.2"], packs) == (0.0, (("healthcare", 0.2),))
    assert _arg_error_rates(["0.05", "salon=0.3,healthcare=0.2"], packs) == (
        0.05, (("healthcare", 0.2), ("salon", 0.3)))


@pytest.mark.parametrize(("value", "says"), [
    ("clinic=0.2", "no pack 'clinic'"),
    ("healthcare=lots", "expected RATE or PACK=RATE"),
    ("1.5", "between 0 and 1"),
], ids=["unknown-pack", "not-a-number", "out-of-range"])
def test_bad_values_are_one_line_errors(value: str, says: str) -> None:
    with pytest.raises(InputError, match=says) as err:
        _arg_error_rates([value], load_packs())
    assert "\n" not in str(err.value) and "--arg-error-rate" in str(err.value)
