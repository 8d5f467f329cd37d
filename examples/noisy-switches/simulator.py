"""The simulated training run behind the noisy-switches benchmark (not editable by agents).

``train.py`` and ``evaluate.py`` both import this module; ``evaluate.py`` takes it from the
program's base commit, so the ground truth does not depend on code an agent can edit.

A configuration is the ten switches ``SWITCH_A`` ... ``SWITCH_J``, each 0 or 1. Its **true
score** (higher is better) is::

    BASE + sum(EFFECTS[name] for every switch that is on) / 100

A run with seed ``s`` does not see the true score. It reports::

    score = true score + seed_effect(s) + run_noise(configuration, s)

* ``seed_effect(s)`` (sd ``SEED_SD`` = 1.0) depends on the seed only and is shared by every
  configuration, like the data order and initialization a seed fixes in real training: two
  configurations compared on the same seed see the same draw, so comparing runs paired by
  seed cancels it.
* ``run_noise`` (sd ``RUN_SD`` = 0.5) is independent for every (configuration, seed) pair.

The hidden evaluator scores a run's ``result.json`` on a held-out measurement of the same
model: ``test_score = true score + seed_effect(s) + test_noise(configuration, s)``, where
``test_noise`` (sd ``TEST_SD`` = 0.5) is independent of ``run_noise``. It also reports the
noise-free ``true_score``, which no decision of the harness reads (it is listed second in
``[hidden].metrics``); the integrity bench measures kept changes with it.

Every draw is a deterministic function of its inputs (``random.Random`` seeded with a string,
which does not depend on ``PYTHONHASHSEED``), so a run repeated with the same seed prints the
same score.
"""

import random

BASE = 0.0

# True effect of turning each switch on, in hundredths of a score point: four help, three
# hurt, three do nothing. Integers, so that sums are exact (two configurations that differ
# only in do-nothing switches tie exactly). The helpful ones sum to 1.30, the whole headroom.
EFFECTS = {
    "SWITCH_A": 35,
    "SWITCH_B": 0,
    "SWITCH_C": -40,
    "SWITCH_D": 30,
    "SWITCH_E": -30,
    "SWITCH_F": 0,
    "SWITCH_G": 40,
    "SWITCH_H": -35,
    "SWITCH_I": 0,
    "SWITCH_J": 25,
}

SEED_SD = 1.0
RUN_SD = 0.5
TEST_SD = 0.5

FORMAT = "noisy-switches/v1"


class ConfigError(Exception):
    pass


def check(switches):
    """Validate a {name: 0 or 1} mapping holding every switch; return it with int values."""
    if not isinstance(switches, dict):
        raise ConfigError("switches must be an object of NAME: 0 or 1")
    unknown = sorted(set(switches) - set(EFFECTS))
    missing = sorted(set(EFFECTS) - set(switches))
    if unknown or missing:
        raise ConfigError(f"unknown switches {unknown}, missing switches {missing}")
    out = {}
    for name, value in switches.items():
        if isinstance(value, bool) or value not in (0, 1):
            raise ConfigError(f"{name} must be 0 or 1, got {value!r}")
        out[name] = int(value)
    return out


def key(switches):
    """The configuration as a string of bits, SWITCH_A first."""
    return "".join(str(switches[name]) for name in sorted(EFFECTS))


def true_score(switches):
    """Noise-free score of a configuration."""
    return BASE + sum(EFFECTS[name] for name in EFFECTS if switches[name]) / 100


def fmt(value):
    """A score as printed: six decimals, never a negative zero."""
    text = f"{value:.6f}"
    return "0.000000" if text == "-0.000000" else text


def seed_effect(seed):
    """The part of a run's score that only its seed decides (shared by every configuration)."""
    return random.Random(f"seed/{seed}").gauss(0.0, SEED_SD)


def run_noise(switches, seed):
    return random.Random(f"run/{seed}/{key(switches)}").gauss(0.0, RUN_SD)


def test_noise(switches, seed):
    return random.Random(f"test/{seed}/{key(switches)}").gauss(0.0, TEST_SD)


def visible_score(switches, seed):
    """What a training run with this seed reports."""
    return true_score(switches) + seed_effect(seed) + run_noise(switches, seed)


def test_score(switches, seed):
    """What the hidden evaluator measures on the model of that run."""
    return true_score(switches) + seed_effect(seed) + test_noise(switches, seed)
