"""dBm0 for 16-bit linear PCM.

G.711's full-scale sine is +3.14 dBm0 (mu-law; A-law +3.17), so a 0 dBm0 sine
has a peak of about 32767 / 10**(3.14/20) = 22786 in 16-bit samples.
"""

from __future__ import annotations

import math

FULL_SCALE_DBM0 = 3.14
ZERO_DBM0_PEAK = 32767 / 10 ** (FULL_SCALE_DBM0 / 20)
ZERO_DBM0_MEAN_SQUARE = ZERO_DBM0_PEAK ** 2 / 2


def amplitude_for(dbm0: float) -> float:
    """Peak amplitude of a sine at ``dbm0``."""
    return ZERO_DBM0_PEAK * 10 ** (dbm0 / 20)


def dbm0(mean_square: float) -> float:
    """Level of a signal with the given mean square; -inf for silence."""
    if mean_square <= 0:
        return float("-inf")
    return 10 * math.log10(mean_square / ZERO_DBM0_MEAN_SQUARE)


def db_to_gain(db: float) -> float:
    return 10 ** (db / 20)
