"""Setup step for the tiny-mlp benchmark (not editable by agents).

Generates a deterministic synthetic 2-D regression problem and writes it as
CSV files with a header row ``x1,x2,y``:

* ``train.csv`` and ``val.csv`` go to ``$PICIDAE_DATA`` (default ``./data``);
* ``test.csv`` goes to ``$PICIDAE_HIDDEN`` (default ``./hidden``) and is only
  ever read by ``evaluate.py``.

The target is a smooth but clearly nonlinear surface (products of sinusoids
plus a saddle term) with additive Gaussian noise, so the irreducible mean
squared error is ``NOISE_STD ** 2``. The training set is deliberately small
so that large, unregularized networks can overfit.

Everything is generated from a fixed seed: running the script again rewrites
byte-identical files.
"""

import math
import os
import random

SEED = 20240607
NOISE_STD = 0.2
N_TRAIN = 400
N_VAL = 500
N_TEST = 2000


def target(x1, x2):
    """Noise-free target surface on [-2, 2]^2."""
    return (
        math.sin(2.0 * x1) * math.cos(1.5 * x2)
        + 0.5 * math.tanh(x1 * x2)
        + 0.3 * math.sin(3.0 * x2 + 1.0)
    )


def sample(rng, n):
    rows = []
    for _ in range(n):
        x1 = rng.uniform(-2.0, 2.0)
        x2 = rng.uniform(-2.0, 2.0)
        y = target(x1, x2) + rng.gauss(0.0, NOISE_STD)
        rows.append((x1, x2, y))
    return rows


def write_csv(path, rows):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="ascii", newline="\n") as f:
        f.write("x1,x2,y\n")
        for row in rows:
            f.write(",".join(f"{v:.6f}" for v in row) + "\n")
    os.replace(tmp, path)


def main():
    data_dir = os.environ.get("PICIDAE_DATA") or "./data"
    hidden_dir = os.environ.get("PICIDAE_HIDDEN") or "./hidden"
    os.makedirs(data_dir, exist_ok=True)
    os.makedirs(hidden_dir, exist_ok=True)

    rng = random.Random(SEED)
    train = sample(rng, N_TRAIN)
    val = sample(rng, N_VAL)
    test = sample(rng, N_TEST)

    write_csv(os.path.join(data_dir, "train.csv"), train)
    write_csv(os.path.join(data_dir, "val.csv"), val)
    write_csv(os.path.join(hidden_dir, "test.csv"), test)
    print(f"wrote {len(train)} train, {len(val)} val rows to {data_dir}")
    print(f"wrote {len(test)} test rows to {hidden_dir}")


if __name__ == "__main__":
    main()
