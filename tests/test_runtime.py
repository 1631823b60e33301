"""The fast-by-default runtime (vaecore.runtime): the machine signature keys the kernel cache, a tuned layer computes
what PyTorch's does within the rounding bound of its sum, measured choices are cached per machine, the inference
path leaves deterministic and pinned models alone, and the one switch `deterministic` gives bit-identical runs
whatever was measured or cached."""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vaecore
from vaecore import TrainConfig, Trainer
from vaecore.presets import model_config
from vaecore.runtime import conv_autotune, inference, kernel_cache, layout, machine, memory, policy, timing
from vaecore.utils import evaluating

U32, U64 = 2.0**-24, 2.0**-53  # unit roundoffs of float32 and float64


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test its own kernel cache folder (nothing measured by another test or run is read)."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("VAECORE_CACHE_DIR", str(folder))
    monkeypatch.setattr(kernel_cache, "_loaded", {})
    return folder


def _model(shape: tuple[int, int, int] = (1, 12, 12)) -> vaecore.PretrainedModel:
    return vaecore.build_model(model_config("sigma-vae", input_shape=shape, arch="sigma-conv", latent_dim=4).to_dict(),
                               seed=0)


# the machine signature and the cache ------------------------------------------------------------------------
def test_the_signature_changes_with_threads_and_isa_caps(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    base = machine.signature()
    assert machine.signature() == base, "stable"
    try:
        torch.set_num_threads(1 if threads != 1 else 2)
        assert machine.signature() != base
    finally:
        torch.set_num_threads(threads)
    cap = "SSE41" if os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper() == "AVX2" else "AVX2"  # not the run's own
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", cap)
    capped = machine.current()
    assert capped.signature() != base and ("ONEDNN_MAX_CPU_ISA", cap) in capped.isa_env
    assert f"ONEDNN_MAX_CPU_ISA={cap}" in capped.describe() and capped.torch in capped.describe()


def test_the_cache_is_keyed_by_the_machine_signature(own_cache: Path) -> None:
    threads = torch.get_num_threads()
    kernel_cache.store("k", conv_autotune.GEMM, {"native": 2e-3, "gemm": 1e-3})
    assert kernel_cache.lookup("k") == conv_autotune.GEMM
    path = kernel_cache.cache_path()
    assert path.parent == own_cache / "kernels" and path.stem == machine.signature()
    data = json.loads(path.read_text())
    assert data["entries"]["k"] == {"choice": "gemm", "ms": {"native": 2.0, "gemm": 1.0}}
    assert data["machine"] == machine.describe()
    kernel_cache._loaded.clear()
    assert kernel_cache.lookup("k") == conv_autotune.GEMM, "read back from the file by a fresh process"
    try:
        torch.set_num_threads(1 if threads != 1 else 2)  # another signature: nothing measured under it yet
        assert kernel_cache.lookup("k") is None
        kernel_cache.store("k", conv_autotune.NATIVE, {})
        assert kernel_cache.lookup("k") == conv_autotune.NATIVE
    finally:
        torch.set_num_threads(threads)
    assert kernel_cache.lookup("k") == conv_autotune.GEMM, "each machine signature keeps its own choices"
    assert len(list((own_cache / "kernels").glob("*.json"))) == 2


def test_a_broken_or_oversized_cache_file_is_ignored(own_cache: Path) -> None:
    path = kernel_cache.cache_path()
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert kernel_cache.lookup("k") is None
    kernel_cache.store("k", "native", {})  # replaces it with a valid file
    assert json.loads(path.read_text())["entries"]["k"]["choice"] == "native"
    path.write_bytes(b" " * (kernel_cache.MAX_BYTES + 1))
    kernel_cache._loaded.clear()
    assert kernel_cache.lookup("k") is None


def test_a_read_only_cache_folder_keeps_choices_in_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("VAECORE_CACHE_DIR", str(blocker / "below-a-file"))
    kernel_cache.store("k", "gemm", {})
    assert kernel_cache.lookup("k") == "gemm"


# a tuned model computes what PyTorch's layers compute ----------------------------------------------------------
def _rounding_bound(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """|fp32 result − exact| ≤ γ_(n+1) (|W| * |x| + |b|) for a sum of n = C·kh·kw products in any order (Higham,
    Accuracy and Stability of Numerical Algorithms, §3.1), n + 1 with the bias; computed in float64."""
    n = m.weight[0].numel() if isinstance(m, torch.nn.Conv2d) else m.weight.shape[0] * m.weight[0, 0].numel()
    gamma = sum((n + 1) * u / (1 - (n + 1) * u) for u in (U32, U64))  # float32's, plus the float64 reference's
    w, xa = m.weight.detach().double().abs(), x.detach().double().abs()
    b = None if m.bias is None else m.bias.detach().double().abs()
    if isinstance(m, torch.nn.Conv2d):
        mag = F.conv2d(xa, w, b, m.stride, m.padding)
    else:
        mag = F.conv_transpose2d(xa, w, b, m.stride, m.padding, m.output_padding)
    return gamma * mag


def _exact(m: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    w, b = m.weight.detach().double(), None if m.bias is None else m.bias.detach().double()
    if isinstance(m, torch.nn.Conv2d):
        return F.conv2d(x.detach().double(), w, b, m.stride, m.padding)
    return F.conv_transpose2d(x.detach().double(), w, b, m.stride, m.padding, m.output_padding)


@pytest.mark.parametrize("choice", [conv_autotune.NATIVE, conv_autotune.GEMM])
def test_every_tuned_layer_is_within_the_rounding_bound_of_its_sum(choice: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_cache, "lookup", lambda key: choice)  # every layer forced to one kernel
    tuned = _model()
    conv_autotune.enable(tuned)
    seen: list[tuple[torch.nn.Module, torch.Tensor, torch.Tensor]] = []
    hooks = [m.register_forward_hook(lambda m, a, y: seen.append((m, a[0], y)))
             for m in layout.conv_layers(tuned)]
    x = torch.rand(8, 1, 12, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        tuned.reconstruct(x)
    torch.manual_seed(0)
    tuned.loss(x).loss.backward()  # the training signatures too
    for h in hooks:
        h.remove()
    assert len(seen) == 2 * len(layout.conv_layers(tuned))
    for m, xin, y in seen:
        err = (y.detach().double() - _exact(m, xin)).abs()
        assert bool((err <= _rounding_bound(m, xin)).all()), f"{m}: error {float(err.max()):.3g} over the bound"
    table = conv_autotune.choices(tuned)
    assert {c for t in table.values() for c in t.values()} == {choice}
    assert any(k.endswith("/train") for t in table.values() for k in t)


def test_measured_choices_are_cached_and_read_back_instead_of_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = conv_autotune.measure
    monkeypatch.setattr(conv_autotune, "measure", lambda m, x, grad: calls.append(1) or real(m, x, grad))
    x = torch.rand(70, 1, 12, 12)
    first = _model()
    conv_autotune.enable(first)
    with torch.no_grad():
        first.reconstruct(x)
    assert len(calls) == len(layout.conv_layers(first)), "each layer timed once"
    second = _model()
    conv_autotune.enable(second)
    with torch.no_grad():
        second.reconstruct(x)
    assert len(calls) == len(layout.conv_layers(first)), "a second model of the same shapes reads the cache"
    assert conv_autotune.choices(second) == conv_autotune.choices(first)


def test_measure_times_both_kernels_and_obeys_the_margin() -> None:
    m = torch.nn.Conv2d(3, 4, 3, 2, 1)
    choice, best = conv_autotune.measure(m, torch.rand(16, 3, 9, 9), grad=True)
    assert set(best) == {conv_autotune.NATIVE, conv_autotune.GEMM} and all(t > 0 for t in best.values())
    expected = conv_autotune.GEMM if best["gemm"] <= conv_autotune.MARGIN * best["native"] else conv_autotune.NATIVE
    assert choice == expected


@pytest.mark.parametrize(("costs", "rounds"), [({"gemm": 1.0, "native": 10.0}, 1), ({"gemm": 10.0, "native": 1.0}, 1),
                                               ({"gemm": 1.0, "native": 1.0}, timing.REPEATS),
                                               ({"gemm": 0.875, "native": 1.0}, timing.REPEATS)])
def test_timing_stops_once_the_choice_cannot_flip(costs: dict[str, float], rounds: int,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A clear difference decides after one timed round; one near the margin gets every round. A fake clock that
    each call advances by its cost (binary fractions: the differences are exact) makes the count exact."""
    now, calls = [0.0], []
    monkeypatch.setattr(timing, "timer", lambda: lambda: now[0])

    def call(name: str) -> None:
        warm_up = name not in calls
        calls.append(name)
        now[0] += costs[name] * (3.0 if warm_up else 1.0)  # the warm-up call is slower

    best = timing.best_times({k: (lambda k=k: call(k)) for k in costs}, challenger="gemm", baseline="native",
                             margin=conv_autotune.MARGIN, before=lambda name: calls.append(f"before {name}"))
    assert best == costs, "each one's best time, the warm-up left out"
    timed = [c for c in calls if not c.startswith("before")]
    assert len(timed) == 2 * (1 + rounds) and len(calls) == 2 * len(timed), "before() precedes every call"


@pytest.mark.parametrize("cheap", [False, True])
def test_a_signature_is_timed_on_a_probe_of_its_batch_or_wholly_when_cheap(cheap: bool,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(conv_autotune, "WHOLE_BELOW", float("inf") if cheap else 0.0)
    seen = []
    real = conv_autotune.measure
    monkeypatch.setattr(conv_autotune, "measure",
                        lambda m, x, grad: seen.append((x.shape[0], grad)) or real(m, x, grad))
    model = _model()
    conv_autotune.enable(model)
    x = torch.rand(conv_autotune.EVAL_PROBE + 5, 1, 12, 12)
    model.loss(x).loss.backward()
    with torch.no_grad():
        model.reconstruct(x)
    n = len(layout.conv_layers(model))
    probes = [(conv_autotune.TRAIN_PROBE, True)] * n + [(conv_autotune.EVAL_PROBE, False)] * n
    wholes = [(x.shape[0], True)] * n + [(x.shape[0], False)] * n if cheap else []
    assert sorted(seen) == sorted(probes + wholes), "the probe, then the whole batch for a cheap layer"


# the inference path ----------------------------------------------------------------------------------------------
def test_prepare_tunes_a_model_once_and_leaves_deterministic_and_pinned_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(layout, "channels_last_pays", lambda model: True)
    model = _model()
    with evaluating(model):
        model.reconstruct(torch.rand(4, 1, 12, 12))
    assert model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert conv_autotune.choices(model), "its layers chose kernels"
    pinned = _model()
    inference.pin(pinned)
    with evaluating(pinned):
        pinned.reconstruct(torch.rand(4, 1, 12, 12))
    assert conv_autotune.choices(pinned) == {} and pinned.encoder[0].weight.is_contiguous()
    with policy.deterministic_mode():
        plain = _model()
        with evaluating(plain):
            plain.reconstruct(torch.rand(4, 1, 12, 12))
        assert conv_autotune.choices(plain) == {} and plain.encoder[0].weight.is_contiguous()
        with evaluating(model):  # prepared before the switch: back to the reference format and kernels
            y = model.reconstruct(torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(1)))
        assert model.encoder[0].weight.is_contiguous()
        with torch.no_grad():
            ref = plain.reconstruct(torch.rand(4, 1, 12, 12, generator=torch.Generator().manual_seed(1)))
        assert torch.equal(y, ref), "the deterministic path is PyTorch's own, bit for bit"


def test_the_layout_choice_is_measured_once_per_machine_and_network(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = layout.measure
    monkeypatch.setattr(layout, "measure", lambda model, shape: calls.append(shape) or real(model, shape))
    a = _model()
    pays = layout.channels_last_pays(a)
    assert calls == [(1, 12, 12)] and a.encoder[0].weight.is_contiguous(), "measured; the format restored"
    assert layout.channels_last_pays(_model()) == pays and len(calls) == 1, "the same network: cached"
    layout.channels_last_pays(_model((1, 16, 16)))
    assert len(calls) == 2, "another image shape is another geometry"
    assert layout.geometry(a, (1, 12, 12)) != layout.geometry(_model((1, 16, 16)), (1, 16, 16))


def test_memory_tuning_is_idempotent_and_can_be_declined(monkeypatch: pytest.MonkeyPatch) -> None:
    first = memory.keep_freed_memory()
    assert memory.keep_freed_memory() == first == memory.kept()
    memory.release()
    monkeypatch.setattr(memory, "_state", {"kept": False})
    monkeypatch.setenv("VAECORE_MALLOC", "system")
    assert memory.keep_freed_memory() is False and not memory.kept()


# training: the default tunes, the switch gives identical runs, a legacy run resumes on its own kernels ----------
def _train(folder: Path, digits: vaecore.Dataset, **changes: object) -> Trainer:
    cfg = TrainConfig(data="digits", max_steps=12, epochs=100, batch_size=64, log_every=4, val_limit=128,
                      checkpoint_every=1000, sample_grids=False, **changes)
    trainer = Trainer(_model((1, 8, 8)), digits, cfg, folder)
    trainer.fit()
    return trainer


def test_deterministic_runs_are_bit_identical_whatever_the_cache_says(tmp_path: Path, digits: vaecore.Dataset,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    runs = {}
    for name, cached in (("gemm", conv_autotune.GEMM), ("native", conv_autotune.NATIVE)):
        monkeypatch.setattr(kernel_cache, "lookup", lambda key, c=cached: c)
        runs[name] = _train(tmp_path / name, digits, deterministic=True)
        assert runs[name].kernel_choices == {}, "nothing measured or read"
    for (key, a), b in zip(runs["gemm"].model.state_dict().items(), runs["native"].model.state_dict().values(),
                           strict=True):
        assert torch.equal(a, b), f"{key} differs between two deterministic runs"
    assert json.loads((tmp_path / "gemm" / "train.json").read_text())["deterministic"] is True
    fast = _train(tmp_path / "fast", digits)  # the default: measured kernels (here: what the cache says)
    assert fast.config.conv_autotune and not fast.config.deterministic
    assert {c for t in fast.kernel_choices.values() for c in t.values()} == {conv_autotune.NATIVE}
    assert conv_autotune.choices(fast.model) == {}, "the model handed back computes like one loaded"


def test_a_run_recorded_before_measured_kernels_resumes_on_pytorchs(tmp_path: Path, digits: vaecore.Dataset) -> None:
    trainer = _train(tmp_path / "old", digits, conv_autotune=False)
    recorded = json.loads((tmp_path / "old" / "train.json").read_text())
    del recorded["conv_autotune"], recorded["deterministic"]  # as written before these settings existed
    (tmp_path / "old" / "train.json").write_text(json.dumps(recorded))
    resumed = Trainer.resume(tmp_path / "old", dataset=digits, max_steps=14)
    assert resumed.config.conv_autotune is False and conv_autotune.choices(resumed.model) == {}
    assert trainer.step == 12


def test_two_instances_of_a_model_compute_alike_whatever_the_timings(monkeypatch: pytest.MonkeyPatch) -> None:
    # timings that flip at every measurement: one instance's history (a larger batch seen first, another thread
    # count) must not give it other kernels than a fresh instance of the same weights gets
    flips = itertools.cycle([conv_autotune.GEMM, conv_autotune.NATIVE])
    monkeypatch.setattr(conv_autotune, "measure", lambda m, x, grad: (next(flips), {}))
    seen, fresh = _model(), _model()
    x = torch.rand(100, 1, 12, 12)
    threads = torch.get_num_threads()
    with torch.no_grad():
        try:
            torch.set_num_threads(1 if threads != 1 else 2)
            with evaluating(seen):
                seen.encode(x[:20])
        finally:
            torch.set_num_threads(threads)
        with evaluating(seen):
            seen.encode(x)
        with evaluating(seen), evaluating(fresh):
            for a, b in zip(seen.encode(x[:16]), fresh.encode(x[:16]), strict=True):
                assert torch.equal(a, b)
            assert torch.equal(seen.encode(x)[0], fresh.encode(x)[0])
    assert conv_autotune.choices(fresh).items() <= conv_autotune.choices(seen).items()


def test_a_trained_model_computes_like_the_same_weights_loaded(tmp_path: Path, digits: vaecore.Dataset) -> None:
    trainer = _train(tmp_path / "run", digits)
    loaded = vaecore.load(tmp_path / "run")
    x = digits.x_test[:16]
    with torch.no_grad():
        assert torch.equal(trainer.model.reconstruct(x), loaded.reconstruct(x)), "outside the inference path"
        with evaluating(trainer.model), evaluating(loaded):
            assert torch.equal(trainer.model.reconstruct(x), loaded.reconstruct(x)), "on it"


def test_a_tuned_copy_keeps_its_choices() -> None:
    model = _model()
    with evaluating(model):
        model.reconstruct(torch.rand(4, 1, 12, 12))
    twin = copy.deepcopy(model)
    assert conv_autotune.choices(twin) == conv_autotune.choices(model)


def test_the_cli_switch_makes_evaluation_bit_for_bit() -> None:
    from vaecore import cli

    try:
        args = cli.build_parser().parse_args(["eval", "sigma-vae", "--deterministic"])
        assert cli._eval_config(args).deterministic and policy.deterministic()
        policy.set_deterministic(None)
        args = cli.build_parser().parse_args(["compare", "sigma-vae", "ae"])
        assert not cli._eval_config(args).deterministic and not policy.deterministic()
    finally:
        policy.set_deterministic(None)
