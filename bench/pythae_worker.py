"""Pythae's side of `bench/race_pythae.py`, run by the Pythae virtualenv's Python (pythae==0.1.2).

    .venv-pythae/bin/python bench/pythae_worker.py --net pythae-conv --data DATA.npz --out DIR

Trains one epoch through Pythae's own `TrainingPipeline` (VAE, `reconstruction_loss="mse"`,
Adam, one eval pass per epoch, the final model saved) and times encode + decode of the test
images; prints one JSON line: seconds, images/s and peak resident memory. With one torch thread on the CPU the
figures are the process's CPU time (as every side of the race times them: robust to other processes' load);
`train_wall_s` is the wall-clock time beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import time

import numpy as np
import torch
from torch import nn


def small_conv(latent_dim: int) -> tuple[nn.Module, nn.Module]:
    """vaecore's 'sigma-conv' for 28×28 images, layer for layer, as Pythae encoder/decoder classes."""
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(),
                                     nn.Conv2d(64, 128, 3, 2, 1), nn.ReLU(), nn.Flatten(),
                                     nn.Linear(128 * 4 * 4, 2 * latent_dim))

        def forward(self, x: torch.Tensor) -> ModelOutput:
            mu, log_var = self.net(x).chunk(2, dim=1)
            return ModelOutput(embedding=mu, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(latent_dim, 128 * 4 * 4), nn.ReLU(), nn.Unflatten(1, (128, 4, 4)),
                                     nn.ConvTranspose2d(128, 64, 3, 2, 1, output_padding=0), nn.ReLU(),
                                     nn.ConvTranspose2d(64, 32, 3, 2, 1, output_padding=1), nn.ReLU(),
                                     nn.ConvTranspose2d(32, 1, 3, 2, 1, output_padding=1), nn.Sigmoid())

        def forward(self, z: torch.Tensor) -> ModelOutput:
            return ModelOutput(reconstruction=self.net(z))

    return Encoder(), Decoder()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--net", choices=("pythae-conv", "sigma-conv"), required=True)
    p.add_argument("--data", required=True, help=".npz with x_train, x_val, x_test (N, 1, 28, 28) float32")
    p.add_argument("--out", required=True)
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--infer-passes", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="cuda: Pythae's trainer on the GPU (its own data loading, batch by batch)")
    args = p.parse_args()
    logging.disable(logging.WARNING)

    import torch._dynamo  # noqa: F401  (imported before the clock on every side, see race_pythae.py)
    from machine_report import peak_rss_mb  # bench/, beside this script
    from pythae.models import VAE, VAEConfig
    from pythae.pipelines import TrainingPipeline
    from pythae.trainers import BaseTrainerConfig

    data = np.load(args.data)
    x_train, x_val, x_test = (torch.from_numpy(data[k]) for k in ("x_train", "x_val", "x_test"))
    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=args.latent_dim, reconstruction_loss="mse")
    if args.net == "pythae-conv":
        from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST

        encoder, decoder = Encoder_Conv_VAE_MNIST(cfg), Decoder_Conv_AE_MNIST(cfg)
    else:
        encoder, decoder = small_conv(args.latent_dim)
    model = VAE(cfg, encoder=encoder, decoder=decoder)
    params = sum(p.numel() for p in model.parameters())
    trainer_cfg = BaseTrainerConfig(output_dir=args.out, num_epochs=args.epochs, learning_rate=args.lr,
                                    per_device_train_batch_size=args.batch_size,
                                    per_device_eval_batch_size=args.batch_size, optimizer_cls="Adam",
                                    steps_saving=None, no_cuda=args.device != "cuda")
    pipeline = TrainingPipeline(training_config=trainer_cfg, model=model)
    if args.device == "cuda":
        torch.cuda.init()
    tick = time.process_time if args.device == "cpu" and torch.get_num_threads() == 1 else time.perf_counter
    t, wall = tick(), time.perf_counter()
    pipeline(train_data=x_train, eval_data=x_val)
    train_s, train_wall_s = tick() - t, time.perf_counter() - wall

    model.eval()
    cuda = args.device == "cuda"
    model.to(args.device)
    x_test = x_test.to(args.device)
    times = []
    with torch.inference_mode():
        for _ in range(args.infer_passes + 1):
            if cuda:
                torch.cuda.synchronize()
            t = tick()
            for i in range(0, x_test.shape[0], 500):
                z = model.encoder(x_test[i:i + 500]).embedding
                _ = model.decoder(z).reconstruction
            if cuda:
                torch.cuda.synchronize()
            times.append(tick() - t)
    infer_s = float(np.median(times[1:]))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if cuda
            else peak_rss_mb())
    print(json.dumps({"side": "pythae", "net": args.net, "params": params, "train_s": train_s,
                      "train_wall_s": train_wall_s,
                      "train_img_s": args.epochs * x_train.shape[0] / train_s,
                      "infer_img_s": x_test.shape[0] / infer_s, "threads": torch.get_num_threads(),
                      "peak_mb": peak}))


if __name__ == "__main__":
    main()
