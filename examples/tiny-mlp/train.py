"""Train a one-hidden-layer tanh MLP on the tiny-mlp regression problem.

This is the only file an agent may edit. It is pure Python 3 standard
library: no numpy, no third-party packages.

Environment:
    PICIDAE_SEED         integer seed for initialization and shuffling (default 0)
    PICIDAE_DATA         directory holding train.csv and val.csv (default ./data)
    PICIDAE_ARTIFACTS    directory for model.json (default ./artifacts)
    PICIDAE_TIME_BUDGET  optional wall-clock budget in seconds; training stops
                         early when most of it has been used
    PICIDAE_METRICS      optional file; one JSON line of metrics is appended

Output (stdout, one per line):
    val_loss: <mean squared error on val.csv, or nan if training diverged>
    train_loss: <mean squared error on train.csv>
    train_seconds: <wall-clock seconds spent training>

The amount of work is fixed in sample-gradient evaluations (TOTAL_SAMPLES), so
a larger BATCH_SIZE means fewer, larger optimizer steps.

The trained model is written in the JSON format documented in evaluate.py.
"""

import json
import math
import os
import random
import sys
import time

# Hyperparameters (one per line, `NAME = value`).
LEARNING_RATE = 0.05
HIDDEN_UNITS = 8
WEIGHT_DECAY = 0.0001
BATCH_SIZE = 32
MOMENTUM = 0.0
INIT_SCALE = 1.0

# Fixed training budget: total number of per-sample gradient evaluations.
TOTAL_SAMPLES = 200_000
# Fraction of PICIDAE_TIME_BUDGET that training may use before stopping.
BUDGET_FRACTION = 0.8
# A batch loss above this (or non-finite) counts as divergence.
DIVERGENCE_LOSS = 1e6


def load_csv(path):
    """Return (features, targets); the last column is the target."""
    xs, ys = [], []
    with open(path, encoding="ascii") as f:
        next(f)  # header
        for line in f:
            line = line.strip()
            if not line:
                continue
            values = [float(v) for v in line.split(",")]
            xs.append(values[:-1])
            ys.append(values[-1])
    return xs, ys


class MLP:
    """Dense tanh hidden layer followed by a linear scalar output.

    The hidden weights are stored column-major (one list of HIDDEN_UNITS
    weights per input feature) because that makes the pure-Python inner loops
    cheaper.
    """

    def __init__(self, n_in, n_hidden, init_scale, rng):
        s1 = init_scale / math.sqrt(n_in)
        s2 = init_scale / math.sqrt(n_hidden)
        self.w1 = [[rng.gauss(0.0, s1) for _ in range(n_hidden)] for _ in range(n_in)]
        self.b1 = [rng.gauss(0.0, init_scale) for _ in range(n_hidden)]
        self.w2 = [rng.gauss(0.0, s2) for _ in range(n_hidden)]
        self.b2 = 0.0

    def hidden(self, x):
        z = self.b1
        for xi, col in zip(x, self.w1):
            z = [zj + xi * wj for zj, wj in zip(z, col)]
        return [math.tanh(v) for v in z]

    def predict(self, x):
        return self.b2 + sum([a * b for a, b in zip(self.w2, self.hidden(x))])

    def mse(self, xs, ys):
        total = 0.0
        for x, y in zip(xs, ys):
            err = self.predict(x) - y
            total += err * err
        return total / len(ys)

    def gradients(self, xs, ys):
        """Mean-squared-error gradients over a batch, plus the batch loss."""
        n_hidden = len(self.b1)
        g1 = [[0.0] * n_hidden for _ in self.w1]
        gb1 = [0.0] * n_hidden
        g2 = [0.0] * n_hidden
        gb2 = 0.0
        loss = 0.0
        w2 = self.w2
        scale = 2.0 / len(ys)
        for x, y in zip(xs, ys):
            h = self.hidden(x)
            err = self.b2 + sum([a * b for a, b in zip(w2, h)]) - y
            loss += err * err
            d = scale * err
            gb2 += d
            g2 = [g + d * hj for g, hj in zip(g2, h)]
            dz = [d * wj * (1.0 - hj * hj) for wj, hj in zip(w2, h)]
            gb1 = [g + v for g, v in zip(gb1, dz)]
            for i, xi in enumerate(x):
                g1[i] = [g + xi * v for g, v in zip(g1[i], dz)]
        return (g1, gb1, g2, gb2), loss / len(ys)

    def to_json(self):
        """Export in the layer-list format read by evaluate.py."""
        n_in = len(self.w1)
        hidden_rows = [[self.w1[i][j] for i in range(n_in)] for j in range(len(self.b1))]
        return {
            "format": "tiny-mlp/v1",
            "layers": [
                {"weights": hidden_rows, "bias": list(self.b1), "activation": "tanh"},
                {"weights": [list(self.w2)], "bias": [self.b2], "activation": "identity"},
            ],
        }


class Momentum:
    """Heavy-ball SGD; L2 weight decay applies to weights but not biases."""

    def __init__(self, model, lr, momentum, weight_decay):
        self.lr, self.mu, self.wd = lr, momentum, weight_decay
        self.v1 = [[0.0] * len(col) for col in model.w1]
        self.vb1 = [0.0] * len(model.b1)
        self.v2 = [0.0] * len(model.w2)
        self.vb2 = 0.0

    def _update(self, w, v, g, decay):
        lr, mu = self.lr, self.mu
        v = [mu * vi - lr * (gi + decay * wi) for vi, gi, wi in zip(v, g, w)]
        w = [wi + vi for wi, vi in zip(w, v)]
        return w, v

    def step(self, model, grads):
        g1, gb1, g2, gb2 = grads
        for i in range(len(model.w1)):
            model.w1[i], self.v1[i] = self._update(model.w1[i], self.v1[i], g1[i], self.wd)
        model.b1, self.vb1 = self._update(model.b1, self.vb1, gb1, 0.0)
        model.w2, self.v2 = self._update(model.w2, self.v2, g2, self.wd)
        self.vb2 = self.mu * self.vb2 - self.lr * gb2
        model.b2 += self.vb2


def finite(v):
    return not (math.isnan(v) or math.isinf(v))


def json_safe(obj):
    """Replace non-finite floats with None so the output is strict JSON."""
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not finite(obj):
        return None
    return obj


def main():
    seed = int(os.environ.get("PICIDAE_SEED") or 0)
    data_dir = os.environ.get("PICIDAE_DATA") or "./data"
    artifacts_dir = os.environ.get("PICIDAE_ARTIFACTS") or "./artifacts"
    budget = os.environ.get("PICIDAE_TIME_BUDGET")
    deadline = float(budget) * BUDGET_FRACTION if budget else math.inf

    train_x, train_y = load_csv(os.path.join(data_dir, "train.csv"))
    val_x, val_y = load_csv(os.path.join(data_dir, "val.csv"))

    rng = random.Random(seed)
    model = MLP(len(train_x[0]), int(HIDDEN_UNITS), INIT_SCALE, rng)
    opt = Momentum(model, LEARNING_RATE, MOMENTUM, WEIGHT_DECAY)
    batch_size = max(1, min(int(BATCH_SIZE), len(train_y)))
    steps = TOTAL_SAMPLES // batch_size

    start = time.perf_counter()
    order = list(range(len(train_y)))
    pos = len(order)
    diverged = False
    done = 0
    for _ in range(steps):
        if pos + batch_size > len(order):
            rng.shuffle(order)
            pos = 0
        idx = order[pos:pos + batch_size]
        pos += batch_size
        grads, loss = model.gradients([train_x[i] for i in idx], [train_y[i] for i in idx])
        if not finite(loss) or loss > DIVERGENCE_LOSS:
            diverged = True
            break
        opt.step(model, grads)
        done += 1
        if time.perf_counter() - start > deadline:
            print(f"time budget nearly used; stopping after {done}/{steps} steps",
                  file=sys.stderr)
            break
    train_seconds = time.perf_counter() - start

    nan = float("nan")
    val_loss = nan if diverged else model.mse(val_x, val_y)
    train_loss = nan if diverged else model.mse(train_x, train_y)
    if not finite(val_loss):
        val_loss = train_loss = nan

    os.makedirs(artifacts_dir, exist_ok=True)
    with open(os.path.join(artifacts_dir, "model.json"), "w", encoding="ascii") as f:
        json.dump(json_safe(model.to_json()), f)
        f.write("\n")

    print(f"val_loss: {val_loss:.6f}")
    print(f"train_loss: {train_loss:.6f}")
    print(f"train_seconds: {train_seconds:.3f}")

    metrics_path = os.environ.get("PICIDAE_METRICS")
    if metrics_path:
        record = {
            "val_loss": val_loss if finite(val_loss) else None,
            "train_loss": train_loss if finite(train_loss) else None,
            "train_seconds": round(train_seconds, 3),
        }
        with open(metrics_path, "a", encoding="ascii") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
