"""Hidden evaluator for the tiny-mlp benchmark (not editable by agents).

Usage:
    python3 evaluate.py [MODEL_JSON]

MODEL_JSON defaults to ``$PICIDAE_ARTIFACTS/model.json`` (``./artifacts`` when
unset). The held-out set is ``$PICIDAE_HIDDEN/test.csv`` (``./hidden`` when
unset). Prints the mean squared error on it as::

    test_loss: 0.123456

``test_loss: nan`` is printed when the model holds non-finite weights or
produces non-finite predictions. A missing or malformed model file is an
error (message on stderr, exit status 1).

This file deliberately does not import train.py: the forward pass below is
the reference implementation, so the score does not depend on code an agent
can edit.

Model JSON format (``"format": "tiny-mlp/v1"``)
-----------------------------------------------
::

    {
      "format": "tiny-mlp/v1",
      "input_mean": [m1, m2],        # optional, default all 0
      "input_std":  [s1, s2],        # optional, default all 1
      "layers": [
        {"weights": [[w11, w12], ...],  # one row per output unit,
                                        # one column per input of the layer
         "bias": [b1, ...],             # one entry per output unit
         "activation": "tanh"},         # tanh | relu | sigmoid | identity
        ...
        {"weights": [[...]], "bias": [b], "activation": "identity"}
      ]
    }

Inputs are the feature columns of the CSV (every column but the last), in
order. They are standardized as ``(x - input_mean) / input_std`` and then fed
through the layers in order; each layer computes
``activation(weights @ x + bias)``. Any number of layers and any widths are
allowed as long as the shapes chain, the first layer takes one input per
feature, and the last layer has exactly one output: the predicted target.
Any target scaling must be folded into the last layer's weights and bias.
Non-finite weights may be written as ``null``.
"""

import json
import math
import os
import sys

FORMAT = "tiny-mlp/v1"

ACTIVATIONS = {
    "tanh": math.tanh,
    "relu": lambda v: v if v > 0.0 else 0.0,
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)) if v >= 0.0
    else math.exp(v) / (1.0 + math.exp(v)),
    "identity": lambda v: v,
}


class ModelError(Exception):
    pass


def as_float(v):
    """Number (or null for a non-finite weight) to float."""
    if v is None:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ModelError(f"expected a number, got {v!r}")
    return float(v)


def load_model(path, n_features):
    """Parse and shape-check a model; return (mean, std, layers)."""
    with open(path, encoding="utf-8") as f:
        spec = json.load(f)
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ModelError(f"expected a JSON object with \"format\": \"{FORMAT}\"")
    mean = [as_float(v) for v in spec.get("input_mean", [0.0] * n_features)]
    std = [as_float(v) for v in spec.get("input_std", [1.0] * n_features)]
    if len(mean) != n_features or len(std) != n_features:
        raise ModelError(f"input_mean/input_std must have {n_features} entries")

    raw_layers = spec.get("layers")
    if not isinstance(raw_layers, list) or not raw_layers:
        raise ModelError("\"layers\" must be a non-empty list")
    layers = []
    width = n_features
    for k, layer in enumerate(raw_layers):
        try:
            weights = [[as_float(w) for w in row] for row in layer["weights"]]
            bias = [as_float(b) for b in layer["bias"]]
            act = ACTIVATIONS[layer.get("activation", "identity")]
        except (KeyError, TypeError) as e:
            raise ModelError(f"layer {k}: malformed ({e!r})") from None
        if not weights or len(bias) != len(weights):
            raise ModelError(f"layer {k}: need one bias per weight row")
        if any(len(row) != width for row in weights):
            raise ModelError(f"layer {k}: every weight row needs {width} entries")
        layers.append((weights, bias, act))
        width = len(weights)
    if width != 1:
        raise ModelError("the last layer must have exactly one output")
    return mean, std, layers


def forward(model, x):
    """Predicted target for one feature vector."""
    mean, std, layers = model
    h = [(xi - m) / s for xi, m, s in zip(x, mean, std)]
    for weights, bias, act in layers:
        h = [act(b + sum(w * v for w, v in zip(row, h))) for row, b in zip(weights, bias)]
    return h[0]


def load_csv(path):
    xs, ys = [], []
    with open(path, encoding="ascii") as f:
        next(f)  # header
        for line in f:
            line = line.strip()
            if line:
                values = [float(v) for v in line.split(",")]
                xs.append(values[:-1])
                ys.append(values[-1])
    return xs, ys


def main():
    artifacts_dir = os.environ.get("PICIDAE_ARTIFACTS") or "./artifacts"
    hidden_dir = os.environ.get("PICIDAE_HIDDEN") or "./hidden"
    model_path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(artifacts_dir, "model.json")

    xs, ys = load_csv(os.path.join(hidden_dir, "test.csv"))
    try:
        model = load_model(model_path, len(xs[0]))
    except (OSError, ValueError, ModelError) as e:
        print(f"evaluate.py: cannot load model {model_path}: {e}", file=sys.stderr)
        return 1

    total = 0.0
    try:
        for x, y in zip(xs, ys):
            err = forward(model, x) - y
            total += err * err
        loss = total / len(ys)
    except (OverflowError, ZeroDivisionError, ValueError):
        loss = math.nan
    if math.isnan(loss) or math.isinf(loss):
        loss = math.nan
    print(f"test_loss: {loss:.6f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
