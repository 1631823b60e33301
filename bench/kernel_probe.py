"""Does timing a slice of a batch choose the kernels that timing the whole batch does?

    python bench/kernel_probe.py [--nets pythae-conv,sigma-conv] [--batch 100] [--probes 100,32] [--threads 1]

`vaecore.runtime.conv_autotune` times oneDNN's kernel against the GEMM lowering on the first `TRAIN_PROBE`
images of a training batch (`EVAL_PROBE` of an inference one), not the whole batch, to make the one-off measuring
on a new machine cheap. This checks the assumption behind that: for every conv layer of a network, on its real
input of a `--batch`-image training (or `--eval`) batch (needing its gradient, as in training, except the first
layer's), the GEMM / oneDNN time ratio measured on each probe size
(best of `--repeats` interleaved calls after a warm-up, no early stop) and the choice it gives (GEMM when the ratio
is at most `conv_autotune.MARGIN`). Prints the machine line first; run it under the ISA caps to check another CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", default="pythae-conv,sigma-conv")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--probes", default="100,32")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--eval", action="store_true", help="forward only (an inference batch), not forward + backward")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    import machine_report

    import vaecore
    from vaecore.presets import model_config
    from vaecore.runtime import conv_autotune, layout, timing

    print(machine_report.header()[0])
    timing.REPEATS, timing.SETTLED = args.repeats, float("inf")  # every repeat, no early stop
    probes = [int(n) for n in args.probes.split(",")]
    for net in args.nets.split(","):
        model = vaecore.build_model(model_config("gaussian-vae", arch=net, latent_dim=16,
                                                 input_shape=(1, 28, 28)).to_dict(), seed=0)
        inputs: dict[torch.nn.Module, torch.Tensor] = {}
        hooks = [m.register_forward_pre_hook(  # as in training: a layer's input needs its gradient unless it is data
            lambda m, a, seen=inputs: seen.setdefault(m, a[0].detach().requires_grad_(a[0].requires_grad)))
                 for m in layout.conv_layers(model)]
        x = torch.rand(args.batch, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        with torch.set_grad_enabled(not args.eval):
            model.loss(x)
        for h in hooks:
            h.remove()
        print(f"\n{net}, batch {args.batch}, {'forward only' if args.eval else 'forward + backward'}: "
              "GEMM / oneDNN time (choice) per probe size")
        agree = True
        for m, xin in inputs.items():
            cells, picks = [], set()
            for n in probes:
                choice, best = conv_autotune.measure(m, xin[:n], grad=not args.eval)
                picks.add(choice)
                cells.append(f"{n:>4}: {best['gemm'] / best['native']:.2f} ({choice}, {best['native'] * 1e3:.1f} ms)")
            agree &= len(picks) == 1
            flag = "" if len(picks) == 1 else "  DIFFER"
            print(f"  {conv_autotune.layer_geometry(m):<48} " + "   ".join(cells) + flag)
        print(f"  every layer's choice the same at every probe size: {agree}")


if __name__ == "__main__":
    main()
