"""Record reference outputs of every bundled checkpoint (run once, before a config conversion).

For the first 8 MNIST test images: the latent point, the decoder outputs at it, and 4 importance
weights per image from a seeded generator; stored as sums and a few entries at float64 precision.
`tests/test_checkpoint_outputs.py` checks that the checkpoints still give these outputs.
"""

import json
import sys
from pathlib import Path

import torch

import vaecore
from vaecore.hub import bundled_names

ROOT = Path(__file__).resolve().parents[2]


def summary(t: torch.Tensor) -> dict:
    t = t.detach().double().flatten()
    return {"sum": float(t.sum()), "abs_sum": float(t.abs().sum()), "head": [float(v) for v in t[:6]]}


def main(out: str) -> None:
    x = vaecore.load_dataset("mnist").x_test[:8]
    result = {}
    for name in bundled_names():
        model = vaecore.load(name)
        with torch.no_grad():
            z = model.embed(x)
            entry = {"latent": summary(z), "decoder": summary(model.decode_params(z))}
            if model.capabilities.elbo:
                g = torch.Generator().manual_seed(0)
                entry["log_weights"] = summary(model.log_importance_weights(x, 4, generator=g))
        result[name] = entry
        print(name, file=sys.stderr)
    Path(out).write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
