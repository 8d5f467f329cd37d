"""One "training run" of the noisy-switches benchmark.

This is the only file an agent may edit. It is pure Python 3 standard library and takes
little more than starting the interpreter.

Ten switches below each turn one change on (1) or off (0). The run's score comes from
simulator.py: the configuration's true score, plus a term that only the seed decides
(shared by every configuration), plus noise of its own. See README.md.

Environment:
    PICIDAE_SEED         integer seed of the run (default 0)
    PICIDAE_ARTIFACTS    directory for result.json (default ./artifacts)

Output (stdout):
    score: <float; higher is better>

Artifact: $PICIDAE_ARTIFACTS/result.json, {"format": "noisy-switches/v1", "seed": <int>,
"switches": {"SWITCH_A": 0 or 1, ...}}, which the hidden evaluator scores.
"""

import json
import os
import sys

sys.dont_write_bytecode = True
import simulator  # noqa: E402

# Switches (one per line, `NAME = 0` or `NAME = 1`).
SWITCH_A = 0
SWITCH_B = 0
SWITCH_C = 0
SWITCH_D = 0
SWITCH_E = 0
SWITCH_F = 0
SWITCH_G = 0
SWITCH_H = 0
SWITCH_I = 0
SWITCH_J = 0


def main():
    seed = int(os.environ.get("PICIDAE_SEED") or 0)
    artifacts_dir = os.environ.get("PICIDAE_ARTIFACTS") or "./artifacts"
    switches = simulator.check(
        {name: value for name, value in globals().items() if name.startswith("SWITCH_")}
    )
    score = simulator.visible_score(switches, seed)

    os.makedirs(artifacts_dir, exist_ok=True)
    with open(os.path.join(artifacts_dir, "result.json"), "w", encoding="ascii") as f:
        json.dump({"format": simulator.FORMAT, "seed": seed, "switches": switches}, f,
                  sort_keys=True)
        f.write("\n")

    print(f"score: {simulator.fmt(score)}")


if __name__ == "__main__":
    main()
