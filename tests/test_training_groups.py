"""Models with several parameter groups: one optimizer per group, each group's gradients from its own
loss only, optimizers stepped in the declared order, every optimizer's state in the checkpoint
(bit-identical resume), the step context passed to `loss`, `on_epoch_end` after each epoch."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore.components.context import StepContext
from vaecore.config import ModelConfig
from vaecore.models.base import Capabilities, LossOutput, ParamGroup, PretrainedModel, register_model_type


@register_model_type
class TwoGroupToy(PretrainedModel):
    """An autoencoder that tries to fool a critic on its codes; the critic has its own optimizer."""

    model_type = "test-two-group"
    config_class = ModelConfig

    def __init__(self, config: dict | ModelConfig) -> None:
        super().__init__()
        self.config = self._parse_config(config)
        d = math.prod(self.config.input_shape)
        k = self.config.latent_dim
        self.encoder, self.decoder, self.critic = nn.Linear(d, k), nn.Linear(k, d), nn.Linear(k, 1)
        self.steps_seen: list[int] = []
        self.epochs_ended: list[int] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(elbo=False, prior_samples=True, latent_shape=(self.config.latent_dim,),
                            why_no_elbo="a toy")

    def param_groups(self) -> list[ParamGroup]:
        return [ParamGroup("autoencoder", [*self.encoder.parameters(), *self.decoder.parameters()]),
                ParamGroup("critic", list(self.critic.parameters()), lr_scale=0.5)]

    def _terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        flat = x.flatten(1)
        z = self.encoder(flat)
        recon = ((torch.sigmoid(self.decoder(z)) - flat) ** 2).sum(dim=1)
        score = self.critic(z)
        return recon, recon.mean() - 0.1 * score.mean(), (score ** 2).mean() + score.mean()

    def loss(self, x: torch.Tensor, ctx: StepContext | None = None) -> LossOutput:
        if ctx is not None and ctx.training:
            self.steps_seen.append(ctx.step)
        _, ae, critic = self._terms(self._check_input(x))
        return LossOutput(ae + critic, {"loss": float(ae.detach()), "critic": float(critic.detach())},
                          {"autoencoder": ae, "critic": critic})

    @torch.no_grad()
    def validate(self, x: torch.Tensor, ctx: StepContext | None = None) -> dict[str, torch.Tensor]:
        recon, ae, _ = self._terms(self._check_input(x))
        return {"loss": ae, "mse": recon}

    def on_epoch_end(self, ctx: StepContext) -> None:
        self.epochs_ended.append(ctx.epoch)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.latent_dim, generator=generator, device=self.device)
        return torch.sigmoid(self.decoder(z)).view(n, *self.config.input_shape)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(self.encoder(x.flatten(1)))).view_as(x)


def _trainer(out: Path, digits: vaecore.Dataset, callbacks=(), **cfg: object) -> Trainer:
    torch.manual_seed(0)
    model = TwoGroupToy(ModelConfig(model_type="test-two-group", input_shape=digits.shape, latent_dim=4,
                                    arch="mlp", dataset="digits"))
    values = {"data": "digits", "max_steps": 40, "epochs": 100, "batch_size": 64, "log_every": 5, "val_limit": 200,
              "checkpoint_every": 1000, **cfg}
    return Trainer(model, digits, TrainConfig(**values), out, callbacks)


def test_each_group_steps_on_its_own_loss(tmp_path: Path, digits: vaecore.Dataset) -> None:
    trainer = _trainer(tmp_path, digits, optimizer="sgd", lr=0.1, max_steps=1)
    model = trainer.model
    assert len(trainer.optimizers) == 2
    assert [g["lr"] for opt in trainer.optimizers for g in opt.param_groups] == [0.1, 0.05]
    x = trainer._batch(0, 0)
    out = model.loss(x)
    ae_params = [*model.encoder.parameters(), *model.decoder.parameters()]
    critic_params = list(model.critic.parameters())
    want_ae = torch.autograd.grad(out.group_losses["autoencoder"], ae_params, retain_graph=True)
    want_critic = torch.autograd.grad(out.group_losses["critic"], critic_params)
    before = [p.detach().clone() for p in ae_params + critic_params]
    trainer.fit()
    assert model.steps_seen == [0]
    for p, b, g, lr in zip(ae_params + critic_params, before, [*want_ae, *want_critic],
                           [0.1] * len(ae_params) + [0.05] * len(critic_params), strict=True):
        torch.testing.assert_close(p.detach(), b - lr * g, rtol=1e-5, atol=1e-7)


def test_two_groups_resume_exactly(tmp_path: Path, digits: vaecore.Dataset) -> None:
    full = _trainer(tmp_path / "full", digits)
    full.fit()
    spe = full.steps_per_epoch
    assert full.model.steps_seen == list(range(40))
    assert full.model.epochs_ended == list(range(40 // spe))
    holder: dict[str, Trainer] = {}

    def stop_at_30(record: dict) -> None:
        if record.get("kind") == "step" and record["step"] >= 30:
            holder["t"].stop()

    part = _trainer(tmp_path / "part", digits, [stop_at_30])
    part.config.log_every = 1
    holder["t"] = part
    assert part.fit().step == 30
    keys = load_file(str(tmp_path / "part" / "checkpoint.safetensors")).keys()
    assert any(k.startswith("optim.") for k in keys) and any(k.startswith("optim1.") for k in keys)
    resumed = Trainer.resume(tmp_path / "part")
    assert resumed.fit().status == "finished"
    assert resumed.model.steps_seen == list(range(30, 40))
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), f"{name} differs after resume"
    for opt_full, opt_resumed in zip(full.optimizers, resumed.optimizers, strict=True):
        for s_full, s_res in zip(opt_full.state.values(), opt_resumed.state.values(), strict=True):
            assert all(torch.equal(s_full[k], s_res[k]) for k in s_full)
