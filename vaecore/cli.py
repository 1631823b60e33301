"""Command line: `vaecore` / `python -m vaecore list-models | train | eval | sample | compare | publish`.

Every failure a user can cause ends in one line `error: ...` on stderr and a non-zero exit status
(2: the input is wrong, 1: the run failed); `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from vaecore.files import APP_RUN, SAMPLES

DEFAULT_EVAL = "elbo,mse"
SAMPLER_TRAIN = 10_000  # samplers.fit_sampler's default n_train
METRIC_ALIASES = {"fid": "fd"}  # our Fréchet distance uses the bundled classifier's features, see metrics.METRICS


def _parse_set(items: list[str]) -> dict[str, Any]:
    """--set key=value pairs; values are JSON when they parse as JSON, else strings."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            _fail(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        try:
            value: Any = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        if key.startswith("likelihood_kwargs."):
            out.setdefault("likelihood_kwargs", {})[key.split(".", 1)[1]] = value
        else:
            out[key] = value
    return out


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {_one_line(message)}", file=sys.stderr)
    raise SystemExit(code)


def _one_line(message: str) -> str:
    return " ".join(str(message).split()) or "unknown error"


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _check_device(name: str | None) -> None:
    if name is not None:
        from vaecore.utils import default_device

        default_device(name)


def _check_out(path: str | Path) -> Path:
    """An output file path that can be written: not a folder, its folder exists and is writable."""
    import os

    out = Path(path)
    if out.is_dir():
        _fail(f"--out {out} is a folder; give a file name, e.g. {out / 'out.png'}")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        _fail(f"--out {out}: the folder {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
        _fail(f"--out {out}: no permission to write there; choose another place")
    return out


def _check_sampler(names: list[str]) -> None:
    from vaecore.samplers import SAMPLERS

    unknown = [n for n in names if n != "prior" and n not in SAMPLERS]
    if unknown:
        _fail(f"unknown sampler(s) {unknown}; choose from prior, {', '.join(n for n in SAMPLERS if n != 'prior')}")


def cmd_list_models(args: argparse.Namespace) -> None:
    import vaecore
    from vaecore.hub import bundled_names

    vaecore.list_models()
    bundled = set(bundled_names())
    width = max(len(p.name) for p in vaecore.list_presets())
    for p in vaecore.list_presets():
        mark = " [bundled]" if p.name in bundled else ""
        refused = vaecore.models.MODEL_TYPES[p.config.get("model_type", "vae")].refused_likelihoods
        note = f" [refuses likelihood: {', '.join(sorted(refused))}]" if refused else ""
        print(f"{p.name:<{width}}  {p.description}{mark}{note}")


def cmd_train(args: argparse.Namespace) -> None:
    import vaecore
    from vaecore.presets import train_config
    from vaecore.training import distributed
    from vaecore.training.trainer import Trainer, TrainingDiverged

    vaecore.list_models()
    _check_device(args.device)
    if Path(args.out).exists() and not Path(args.out).is_dir():
        _fail(f"--out {args.out} is a file; a run folder is a folder: choose another --out")
    dist_ctx = distributed.setup(args.device or "auto")  # under torchrun: join the process group
    rank0 = dist_ctx.is_main
    progress = not args.no_progress and rank0
    if args.resume:
        out = Path(args.out)
        changes = {k: v for k, v in {"epochs": args.epochs, "max_steps": args.max_steps}.items() if v is not None}
        try:
            trainer = Trainer.resume(out, progress=progress, **changes)
            result = trainer.fit()
        except (FileNotFoundError, ValueError) as e:
            _fail(str(e))
        except TrainingDiverged as e:
            _fail(str(e), 1)
        distributed.finish(dist_ctx)
        if rank0:
            print(f"{result.status} at step {result.step}: {out}")
        return
    spec = _read_settings(args.settings) if args.settings else None
    if spec is not None:
        args.model = args.model or spec["preset"]
    if not args.model:
        _fail("--model is required (see `python -m vaecore list-models`)")
    data_dir = str(Path(args.data_dir).resolve()) if args.data_dir else None
    tc_values = {"data": args.data, "data_dir": data_dir, "limit": args.limit, "epochs": args.epochs,
                 "max_steps": args.max_steps, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
                 "plateau": args.plateau or None, "kl_warmup_steps": args.kl_warmup, "grad_clip": args.grad_clip,
                 "log_every": args.log_every, "device": args.device, "val_limit": args.val_limit,
                 "divergence_factor": args.divergence_factor,
                 **_train_options(args)}
    overrides = _parse_set(args.set)
    for key, value in {"latent_dim": args.latent_dim, "beta": args.beta, "likelihood": args.likelihood,
                       "arch": args.arch}.items():
        if value is not None:
            overrides[key] = value
    try:
        if spec is not None:  # a run described by a settings file (the app's multi-process jobs)
            from vaecore.config import TrainConfig

            tc = TrainConfig.from_dict(spec["train"])
            overrides = {**spec.get("overrides", {}), **overrides}
        else:
            tc = train_config(args.model, **tc_values)
        dataset = vaecore.load_dataset(tc.data, tc.data_dir, limit=tc.limit, seed=tc.seed)
        overrides.setdefault("input_shape", dataset.shape)
        overrides.setdefault("dataset", dataset.name)
        shape = overrides["input_shape"]
        if not isinstance(shape, list | tuple) or tuple(shape) != tuple(dataset.shape):
            _fail(f"--set input_shape={shape} does not match the data's images "
                  f"{list(dataset.shape)}; the data sets the input shape, so leave input_shape out")
        model = vaecore.build_preset(args.model, seed=tc.seed, **overrides)
    except (KeyError, ValueError, FileNotFoundError) as e:
        _fail(str(e).strip("'\"") if isinstance(e, KeyError) else str(e))
    out = Path(args.out)
    from vaecore.training.run_folder import holds_run

    if holds_run(out):
        _fail(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    distributed.barrier(dist_ctx)  # every rank has checked before rank 0 writes
    if rank0:
        print(model.summary(), file=sys.stderr)
    try:
        result = Trainer(model, dataset, tc, out, progress=progress).fit()
    except TrainingDiverged as e:
        _fail(str(e), 1)
    distributed.finish(dist_ctx)
    if rank0:
        print(f"{result.status} at step {result.step}: {out}")


def _read_settings(path: str) -> dict[str, Any]:
    """A run's settings file ({"preset", "train", "overrides"}, as the app writes app_run.json)."""
    import json

    try:
        spec = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        _fail(f"--settings {path}: cannot read it as JSON ({e})")
    if not isinstance(spec, dict) or not isinstance(spec.get("preset"), str) or not isinstance(spec.get("train"), dict):
        _fail(f"--settings {path}: expected a JSON object with a 'preset' name and a 'train' object")
    if not isinstance(spec.get("overrides", {}), dict):
        _fail(f"--settings {path}: 'overrides' must be a JSON object")
    return spec


def _train_options(args: argparse.Namespace) -> dict[str, Any]:
    """The optimizer, schedule, checkpoint, tracker and speed flags as TrainConfig values (None: not given)."""
    from vaecore.training.trackers import parse_trackers

    try:
        log_to = parse_trackers(args.log_to) if args.log_to is not None else None
    except ValueError as e:
        _fail(str(e))
    return {"optimizer": args.optimizer, "weight_decay": args.weight_decay, "momentum": args.momentum,
            "scheduler": args.scheduler, "step_size": args.step_size, "step_gamma": args.step_gamma,
            "min_lr": args.min_lr, "early_stopping": args.early_stopping, "keep_best": False if args.no_keep_best
            else None, "checkpoint_every": args.checkpoint_every, "amp": args.amp, "log_to": log_to,
            "compile": args.compile or None, "channels_last": args.channels_last or None,
            "conv_autotune": args.conv_autotune or None, "threads": args.threads,
            "sample_grids": False if args.no_sample_grids else None}


def _add_train_options(t: argparse.ArgumentParser) -> None:
    from vaecore.config import OPTIMIZERS, SCHEDULERS, TRACKERS

    o = t.add_argument_group("optimizer and schedule")
    o.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam")
    o.add_argument("--weight-decay", type=float)
    o.add_argument("--momentum", type=float, help="sgd / rmsprop momentum")
    o.add_argument("--scheduler", choices=SCHEDULERS, help="learning-rate schedule, stepped per epoch")
    o.add_argument("--step-size", type=int, help="step schedule: epochs between decays")
    o.add_argument("--step-gamma", type=float, help="step schedule: decay factor")
    o.add_argument("--min-lr", type=float, help="cosine / plateau floor")
    c = t.add_argument_group("checkpoints, stopping and tracking")
    c.add_argument("--early-stopping", type=int, metavar="PATIENCE",
                   help="stop after this many epochs without a better validation loss")
    c.add_argument("--no-keep-best", action="store_true", help="do not keep the best model in <out>/best")
    c.add_argument("--checkpoint-every", type=int, help="steps between checkpoints (besides every epoch end)")
    c.add_argument("--no-sample-grids", action="store_true", help="no per-epoch sample grids in <out>/samples")
    c.add_argument("--log-to", metavar="TRACKERS", help=f"comma-separated: {', '.join(TRACKERS)}")
    s = t.add_argument_group("speed")
    s.add_argument("--amp", choices=("auto", "bf16", "fp16", "none"),
                   help="mixed precision: on CUDA auto picks bf16 (or fp16 with a GradScaler); on the CPU only "
                        "bf16 applies (autocast, fast with AMX / AVX-512 BF16); auto = fp32 on the CPU")
    s.add_argument("--compile", action="store_true", help="torch.compile the loss")
    s.add_argument("--channels-last", action="store_true", help="channels-last memory format for conv nets")
    s.add_argument("--conv-autotune", action="store_true",
                   help="CPU: each conv layer times PyTorch's kernel against a GEMM lowering on its first batch "
                        "and keeps the faster (1.5-3.5x on Pythae's ConvNet)")
    s.add_argument("--threads", type=int, help="torch CPU threads")


def _load_model_and_data(args: argparse.Namespace) -> tuple[Any, Any]:
    import vaecore
    from vaecore.training import run_folder as rf

    _check_device(args.device)
    folder = Path(args.model)
    source = rf.read_data_source(folder) if (folder / rf.TRAIN).is_file() else None
    model = vaecore.load(args.model, device=args.device)
    data, data_dir, seed = args.data, args.data_dir, args.seed
    if data is None and source is not None and not source.built_in_python:
        data, data_dir = source.name, data_dir or source.data_dir
        seed = seed if source.seed is None else source.seed
    dataset = vaecore.load_dataset(data or model.config.dataset, data_dir, seed=seed)
    if tuple(dataset.shape) != tuple(model.config.input_shape):
        _fail(f"dataset {dataset.name!r} has images of shape {dataset.shape}, but the model takes "
              f"{tuple(model.config.input_shape)}; pass the dataset it was trained on with --data")
    return model, dataset


def _clean(value: Any) -> Any:
    """JSON-safe values: NaN/inf become None, tensors lists."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _sampler(model: Any, name: str, dataset: Any, folder: Path | None, components: int) -> Any:
    from vaecore import samplers

    if name == "prior":
        return None
    n_fit = min(SAMPLER_TRAIN, int(dataset.x_train.shape[0]))
    if name == "gmm" and components > n_fit:
        _fail(f"--components {components} is more than the {n_fit} training latents the GMM is fitted on; "
              f"use at most {n_fit}")
    kwargs = {"components": components} if name == "gmm" else {}
    if folder is not None and folder.is_dir():
        return samplers.load_or_fit(model, folder, name, dataset, **kwargs)
    return samplers.fit_sampler(model, dataset, name, **kwargs)


def cmd_eval(args: argparse.Namespace) -> None:
    from vaecore.evaluation import metrics
    from vaecore.evaluation.registry import describe_key

    if args.metrics.strip() == "list":
        for m in metrics.METRICS.values():
            print(f"{m.key:>16}  {m.title}{'  [per image]' if m.per_image else ''}\n{'':>18}{m.description}")
        return
    names = [METRIC_ALIASES.get(m.strip(), m.strip()) for m in args.metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in metrics.METRICS]
    if unknown or not names:
        _fail(f"unknown metric(s) {unknown or args.metrics!r}; choose from {', '.join(metrics.METRICS)}")
    _check_sampler([args.sampler])
    model, dataset = _load_model_and_data(args)
    folder = Path(args.model) if Path(args.model).is_dir() else None
    sampler = _sampler(model, args.sampler, dataset, folder, args.components)
    result = metrics.evaluate(model, dataset, names, n_test=args.n_test, seed=args.seed, iwae_k=args.iwae_k,
                              sampler=sampler, fid_weights=args.fid_weights, progress=not args.json)
    result = _clean(result)
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        if isinstance(value, float):
            print(f"{key:>18}: {value:.4f}  {describe_key(key)}")
        else:
            print(f"{key:>18}: {value}")


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from vaecore.data.images import save_grid
    from vaecore.evaluation import metrics

    _check_sampler([args.sampler])
    _check_out(args.out)
    if args.sampler == "prior":
        import vaecore

        _check_device(args.device)
        model = vaecore.load(args.model, device=args.device)
        dataset = None
    else:
        model, dataset = _load_model_and_data(args)
    folder = Path(args.model) if Path(args.model).is_dir() else None
    sampler = _sampler(model, args.sampler, dataset, folder, args.components)
    with torch.no_grad():
        images = metrics.generate(model, args.n, sampler=sampler, seed=args.seed)
    path = save_grid(images, args.out, nrow=max(1, int(math.sqrt(args.n))))
    print(f"wrote {args.n} samples ({args.sampler}) to {path}")


def _unique_names(specs: list[str]) -> list[str]:
    """A table name per model: its folder name, with parent folders added where two would clash."""
    names = [Path(s).name or s for s in specs]
    for depth in range(2, 6):
        clash = {n for n in names if names.count(n) > 1}
        if not clash:
            break
        names = [str(Path(*Path(s).parts[-depth:])) if n in clash else n for s, n in zip(specs, names, strict=True)]
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def cmd_compare(args: argparse.Namespace) -> None:
    import vaecore
    from vaecore.evaluation import compare
    from vaecore.utils import atomic_write_bytes

    samplers = [s.strip() for s in args.sampler.split(",") if s.strip()]
    _check_sampler(samplers)
    if not samplers:
        _fail("--sampler is empty; give at least one, e.g. prior")
    if args.layout not in compare.LAYOUTS:
        _fail(f"unknown layout {args.layout!r}; choose from {', '.join(compare.LAYOUTS)}")
    metric_names = [METRIC_ALIASES.get(m.strip(), m.strip()) for m in args.metrics.split(",")
                    if m.strip()] if args.metrics else None
    from vaecore.evaluation.metrics import METRICS

    unknown = [m for m in metric_names or [] if m not in METRICS]
    if unknown:
        _fail(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    out = _check_out(args.out)
    _check_device(args.device)
    models, folders = {}, {}
    for spec, name in zip(args.models, _unique_names(args.models), strict=True):
        models[name] = vaecore.load(spec, device=args.device)
        if Path(spec).is_dir():
            folders[name] = spec
    shapes = {name: tuple(m.config.input_shape) for name, m in models.items()}
    if len(set(shapes.values())) > 1:
        _fail(f"the models take different image shapes ({shapes}); compare models trained on the same data")
    first = next(iter(models.values()))
    dataset = vaecore.load_dataset(args.data or first.config.dataset, args.data_dir, seed=args.seed)
    if tuple(dataset.shape) != tuple(first.config.input_shape):
        _fail(f"dataset {dataset.name!r} has images of shape {dataset.shape}, but the models take "
              f"{tuple(first.config.input_shape)}; pass the dataset they were trained on with --data")
    rows = compare.compare(models, dataset, samplers=samplers, metrics=metric_names, n_test=args.n_test,
                           seed=args.seed, folders=folders, progress=True)
    md = compare.to_markdown(rows, layout=args.layout, reference=args.reference)
    atomic_write_bytes(out, md.encode())
    atomic_write_bytes(out.with_suffix(".json"), compare.to_json(rows).encode())
    print(md)
    print(f"wrote {out} and {out.with_suffix('.json')}")


def cmd_publish(args: argparse.Namespace) -> None:
    from vaecore.hub import publish

    try:
        url = publish(args.folder, args.repo_id, private=args.private, token=args.token)
    except ValueError as e:
        _fail(str(e))
    except Exception as e:  # network and auth errors from the hub client
        _fail(f"could not publish to {args.repo_id}: {e}", 1)
    print(f"published {args.folder} to {url}")


def build_parser() -> argparse.ArgumentParser:
    from vaecore.components.likelihoods import LIKELIHOODS
    from vaecore.components.nets import ARCHITECTURES
    from vaecore.samplers import SAMPLERS

    archs, samplers, likelihoods = " | ".join(ARCHITECTURES), " | ".join(SAMPLERS), ", ".join(LIKELIHOODS)
    p = CliParser(prog="vaecore", description="Train, evaluate and sample VAEs.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of a failure (any position)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list-models", help="list the model presets").set_defaults(func=cmd_list_models)

    t = sub.add_parser("train", help="train a preset into a run folder")
    t.add_argument("--model", help="preset name (see list-models)")
    t.add_argument("--data", default=None, help="mnist | fashion-mnist | digits | idx | file.npz | hf://owner/name")
    t.add_argument("--data-dir", default=None, help="folder (or file) with the dataset")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--epochs", type=int)
    t.add_argument("--max-steps", type=int, help="stop after this many optimiser steps")
    t.add_argument("--limit", type=int, help="use only the first N training images")
    t.add_argument("--batch-size", type=int)
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int)
    t.add_argument("--latent-dim", type=int)
    t.add_argument("--beta", type=float)
    t.add_argument("--likelihood", help=f"override the likelihood: {likelihoods}")
    t.add_argument("--arch", help=archs)
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any model setting, e.g. --set beta=4 --set likelihood_kwargs.sigma=learned")
    t.add_argument("--plateau", action="store_true", help="ReduceLROnPlateau on the validation loss")
    t.add_argument("--kl-warmup", type=int, dest="kl_warmup", help="steps of linear KL warm-up")
    t.add_argument("--grad-clip", type=float)
    t.add_argument("--log-every", type=int)
    t.add_argument("--val-limit", type=int, help="validation images evaluated each epoch")
    t.add_argument("--device", default=None, help="auto | cpu | cuda")
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    t.add_argument("--settings", metavar="FILE", help="take the preset, training settings and model overrides from a "
                   f"JSON file ({{\"preset\", \"train\", \"overrides\"}}, as the app's {APP_RUN})")
    t.add_argument("--no-progress", action="store_true")
    t.add_argument("--divergence-factor", type=float, help="stop when the loss rises above its best by more than "
                   "this many times its scale (default 100; raise it to tolerate spikes)")
    _add_train_options(t)
    t.set_defaults(func=cmd_train)

    def model_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("model", help="run folder, bundled checkpoint name or Hub repo id")
        q.add_argument("--data", default=None, help="dataset (default: the one the model was trained on)")
        q.add_argument("--data-dir", default=None)
        q.add_argument("--seed", type=int, default=0)
        q.add_argument("--device", default=None)
        q.add_argument("--sampler", default="prior", help=samplers)
        q.add_argument("--components", type=positive_int, default=10, help="GMM components")

    e = sub.add_parser("eval", help="evaluate a model on its test set")
    model_args(e)
    e.add_argument("--metrics", default=DEFAULT_EVAL,
                   help="comma-separated metric names ('list' describes them all)")
    e.add_argument("--n-test", type=positive_int, default=10000)
    e.add_argument("--iwae-k", type=positive_int, default=1000)
    e.add_argument("--fid-weights", default=None, help="Inception weights (safetensors) for standard FID")
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="write a grid of generated images")
    model_args(s)
    s.add_argument("--n", type=positive_int, default=64)
    s.add_argument("--out", default=SAMPLES)
    s.set_defaults(func=cmd_sample)

    c = sub.add_parser("compare", help="evaluate several models on the same test subset")
    c.add_argument("models", nargs="+")
    c.add_argument("--sampler", default="prior", help=f"comma-separated samplers of: {samplers}")
    c.add_argument("--metrics", default=None)
    c.add_argument("--n-test", type=positive_int, default=1000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--data", default=None)
    c.add_argument("--data-dir", default=None)
    c.add_argument("--device", default=None)
    c.add_argument("--layout", default="full", help="full | arelbo-table3 | sigma-table4 | pythae")
    c.add_argument("--reference", action="store_true", help="show the papers' published numbers beside ours")
    c.add_argument("--out", default="compare.md")
    c.set_defaults(func=cmd_compare)

    pb = sub.add_parser("publish", help="push a model folder to a Hugging Face Hub repo")
    pb.add_argument("folder")
    pb.add_argument("repo_id")
    pb.add_argument("--private", action="store_true")
    pb.add_argument("--token", default=None)
    pb.set_defaults(func=cmd_publish)
    return p


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{self.prog}: {message} (see {self.prog} --help)")


USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError, TypeError)


def main(argv: list[str] | None = None) -> None:
    """Run one command; failures print one line (the traceback only with --debug) and exit non-zero."""
    import os

    from vaecore.training.guard import TrainingDiverged

    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:  # `vaecore list-models | head`: the reader left; exit quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        if debug:
            raise
        _fail("interrupted", 130)
    except TrainingDiverged as e:
        if debug:
            raise
        _fail(str(e), 1)
    except USER_ERRORS as e:
        if debug:
            raise
        _fail(str(e).strip("'\"") if isinstance(e, KeyError) else str(e))
    except Exception as e:  # anything else is a failure of the run, not of the input
        if debug:
            raise
        _fail(f"{type(e).__name__}: {e} (run again with --debug for the traceback)", 1)


if __name__ == "__main__":
    main()
