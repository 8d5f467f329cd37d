"""Hidden evaluator for the noisy-switches benchmark (not editable by agents).

Usage:
    python3 evaluate.py [RESULT_JSON]

RESULT_JSON defaults to ``$PICIDAE_ARTIFACTS/result.json`` (``./artifacts`` when unset). It
is the file train.py writes::

    {"format": "noisy-switches/v1", "seed": 0, "switches": {"SWITCH_A": 0, ..., "SWITCH_J": 1}}

Prints two metrics, higher is better::

    test_score: <float>   the run's model measured on held-out data: the true score, plus
                          the seed's shared effect, plus held-out noise independent of the
                          noise in the run's own score (the metric findings are judged on)
    true_score: <float>   the configuration's noise-free true score (read by no decision;
                          the integrity bench measures kept changes with it)

A missing or malformed result file is an error (message on stderr, exit status 1).

The scores come from simulator.py in this checkout (the program's base commit), never from
train.py.
"""

import json
import os
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import simulator  # noqa: E402


def load(path):
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if not isinstance(spec, dict) or spec.get("format") != simulator.FORMAT:
        raise simulator.ConfigError(f"expected a JSON object with \"format\": \"{simulator.FORMAT}\"")
    seed = spec.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise simulator.ConfigError(f"\"seed\" must be an integer, got {seed!r}")
    return simulator.check(spec.get("switches")), seed


def main():
    artifacts_dir = os.environ.get("PICIDAE_ARTIFACTS") or "./artifacts"
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(artifacts_dir, "result.json")
    try:
        switches, seed = load(path)
    except (OSError, ValueError, simulator.ConfigError) as e:
        print(f"evaluate.py: cannot load {path}: {e}", file=sys.stderr)
        return 1
    print(f"test_score: {simulator.fmt(simulator.test_score(switches, seed))}")
    print(f"true_score: {simulator.fmt(simulator.true_score(switches))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
