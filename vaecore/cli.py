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

from vaecore.cli_flags import (
    add_flags,
    add_model_flags,
    flag_of,
    given,
    given_model,
    model_settings,
    refuse_unknown_to_family,
)
from vaecore.files import APP_RUN, SAMPLES, TRAIN

DEFAULT_EVAL = "elbo,mse"
COMPARE_N_TEST = 1000
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
    from vaecore.config import TrainConfig
    from vaecore.presets import train_config
    from vaecore.training import distributed
    from vaecore.training.trainer import Trainer, TrainingDiverged

    vaecore.list_models()
    out = _check_run_folder(args.out)
    train = given(args, TrainConfig)
    _check_device(train.get("device"))
    if train.get("data_dir"):
        train["data_dir"] = str(Path(train["data_dir"]).resolve())
    overrides = {**_parse_set(args.set), **given_model(args)}
    dist_ctx = distributed.setup(train.get("device") or "auto")  # under torchrun: join the process group
    rank0 = dist_ctx.is_main
    progress = not args.no_progress and rank0
    if args.resume:
        changes = _resume_changes(args, out, train, overrides)
        if rank0:
            for name, (old, new) in changes.items():
                print(f"resuming with {flag_of(TrainConfig, name)} {_shown(new)} ({TRAIN} had {_shown(old)}); "
                      f"recorded in {TRAIN}", file=sys.stderr)
        try:
            trainer = Trainer.resume(out, progress=progress, **{k: new for k, (_, new) in changes.items()})
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
    try:
        _check_model_settings(args.model, overrides)
        if spec is not None:  # a run described by a settings file (the app's multi-process jobs)
            tc = TrainConfig.from_dict(spec["train"])
            overrides = {**spec.get("overrides", {}), **overrides}
        else:
            tc = train_config(args.model, **train)
        dataset = vaecore.load_dataset(tc.data, tc.data_dir, limit=tc.limit, seed=tc.seed, image_size=tc.image_size,
                                       channels=tc.channels, storage=tc.data_storage, progress=progress)
        model = vaecore.build_preset(args.model, data=dataset, seed=tc.seed, **overrides)
    except (KeyError, ValueError, FileNotFoundError) as e:
        _fail(str(e).strip("'\"") if isinstance(e, KeyError) else str(e))
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


def _check_run_folder(text: str) -> Path:
    """--out of train: a folder path, not empty, not a file."""
    if not text.strip():
        _fail("--out is empty; give the run folder, e.g. --out runs/my-vae")
    out = Path(text)
    if out.exists() and not out.is_dir():
        _fail(f"--out {out} is a file; a run folder is a folder: choose another --out")
    return out


FIXED = {"preset": "the model is chosen by --model", "model_type": "the model is chosen by --model",
         "input_shape": "the data sets it (choose the data with --data)",
         "dataset": "the data sets it (choose the data with --data)"}


def _check_model_settings(preset_name: str, overrides: dict[str, Any]) -> None:
    """The preset exists and its family takes every model setting given; the preset and the data's fields are
    not settings (--model names the preset, the data sets the input shape)."""
    from vaecore.presets import get_preset

    kind = get_preset(preset_name).config.get("model_type", "vae")
    for name, why in FIXED.items():
        if name in overrides:
            _fail(f"--set {name}: {why}, so leave it out")
    refuse_unknown_to_family(preset_name, kind, overrides, _model_flag)


def _model_flag(name: str) -> str:
    """How the command line names model setting `name`: its flag, else --set."""
    return f"--{name.replace('_', '-')}" if name in model_settings() else f"--set {name}"


def _resume_changes(args: argparse.Namespace, out: Path, train: dict[str, Any],
                    overrides: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The recorded and new values of the settings this resume changes; one error line for a flag that would
    change what the run is (its model, data or optimisation): a resumed run continues exactly."""
    from vaecore.config import TrainConfig, meta_of
    from vaecore.training import run_folder as rf
    from vaecore.utils import read_json

    if args.settings:
        _fail("--settings describes a new run; --resume continues the run recorded in --out (leave --settings out)")
    if not (out / rf.TRAIN).is_file():
        return {}  # Trainer.resume says what is missing
    try:
        recorded = rf.read_train_json(out)
        config = read_json(out / rf.CONFIG) if (out / rf.CONFIG).is_file() else {}
    except ValueError as e:
        _fail(str(e))
    keep = "a resumed run continues with its recorded settings: leave it out, or start a new run in another --out"
    if args.model and args.model != config.get("preset"):
        _fail(f"--model {args.model} differs from the run's model {config.get('preset')!r} ({out / rf.CONFIG}); "
              f"{keep}")
    for name, value in overrides.items():
        if config.get(name) != value:
            _fail(f"{_model_flag(name)} {_shown(value)} differs from the run's {name}={_shown(config.get(name))} "
                  f"({out / rf.CONFIG}); {keep}")
    changes = {}
    for name, value in train.items():
        old = recorded.get(name)
        if old == value:
            continue
        if not meta_of(TrainConfig, name).resumable:
            _fail(f"{flag_of(TrainConfig, name)} {_shown(value)} differs from the run's {name}={_shown(old)} "
                  f"({out / rf.TRAIN}); {keep}")
        changes[name] = (old, value)
    return changes


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


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


def _load_model_and_data(name: str, ec: Any) -> tuple[Any, Any]:
    """The model `name` and the data it is evaluated on: --data, else the data it was trained on."""
    import vaecore
    from vaecore.training import run_folder as rf

    _check_device(ec.device)
    folder = Path(name)
    source = rf.read_data_source(folder) if (folder / rf.TRAIN).is_file() else None
    model = vaecore.load(name, device=ec.device)
    data, data_dir, seed = ec.data, ec.data_dir, ec.seed
    size = channels = None
    if data is None and source is not None and not source.built_in_python:
        data, data_dir = source.name, data_dir or source.data_dir
        seed = seed if source.seed is None else source.seed
        size, channels = source.image_size, source.channels  # the transform it was trained through
    dataset = vaecore.load_dataset(data or model.config.dataset, data_dir, seed=seed, image_size=size,
                                   channels=channels)
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
    n_fit = min(SAMPLER_TRAIN, dataset.size("train"))
    if name == "gmm" and components > n_fit:
        _fail(f"--components {components} is more than the {n_fit} training latents the GMM is fitted on; "
              f"use at most {n_fit}")
    kwargs = {"components": components} if name == "gmm" else {}
    if folder is not None and folder.is_dir():
        return samplers.load_or_fit(model, folder, name, dataset, **kwargs)
    return samplers.fit_sampler(model, dataset, name, **kwargs)


def _eval_config(args: argparse.Namespace, **defaults: Any) -> Any:
    """The EvalConfig of the eval / sample / compare flags given (`defaults` for a command's own defaults)."""
    from vaecore.config import EvalConfig

    try:
        cfg = EvalConfig(**{**defaults, **given(args, EvalConfig)})
    except ValueError as e:
        _fail(str(e))
    if cfg.deterministic:
        from vaecore.runtime import policy

        policy.set_deterministic(True)
    return cfg


def cmd_eval(args: argparse.Namespace) -> None:
    from vaecore.evaluation import metrics
    from vaecore.evaluation.metrics import disentanglement
    from vaecore.evaluation.registry import describe_key

    ec = _eval_config(args, metrics=DEFAULT_EVAL)
    if ec.metrics.strip() == "list":
        for m in metrics.METRICS.values():
            print(f"{m.key:>16}  {m.title}{'  [per image]' if m.per_image else ''}\n{'':>18}{m.description}")
        return
    names = [METRIC_ALIASES.get(m.strip(), m.strip()) for m in ec.metrics.split(",") if m.strip()]
    unknown = [m for m in names if m not in metrics.METRICS]
    if unknown or not names:
        _fail(f"unknown metric(s) {unknown or ec.metrics!r}; choose from {', '.join(metrics.METRICS)}")
    _check_sampler([ec.sampler])
    model, dataset = _load_model_and_data(args.model, ec)
    folder = Path(args.model) if Path(args.model).is_dir() else None
    sampler = _sampler(model, ec.sampler, dataset, folder, ec.components)
    result = metrics.evaluate(model, dataset, names, n_test=ec.n_test, seed=ec.seed, iwae_k=ec.iwae_k,
                              sampler=sampler, fid_weights=ec.fid_weights, progress=not args.json)
    result = _clean(result)
    if args.json:
        print(json.dumps(result))
        return
    notes = result.get("notes") or {}
    undefined: dict[str, list[str]] = {}
    for key in names:
        if result.get(key) is None and key in notes:
            undefined.setdefault(notes[key], []).append(key)
    for why, keys in undefined.items():  # one line per reason, however many metrics it leaves undefined
        print(f"{', '.join(keys)}: undefined: {why}")
    details = disentanglement.report_lines(result)
    for key, value in result.items():
        skip = key in ("notes", "uncertainty", disentanglement.DETAILS)
        if skip or (result.get(key) is None and key in notes):
            continue
        if isinstance(value, float):
            e = metrics.outcome(result, key).estimate  # ± SE over images or ± s.d. over seeds, with its n
            spread = "" if e is None else (f" ± {e.sd:.4f} (s.d., {e.n} seeds)" if e.over == "seeds"
                                           else f" ± {e.se:.4f} (SE, {e.n} images)")
            print(f"{key:>18}: {value:.4f}{spread}  {describe_key(key)}")
        else:
            print(f"{key:>18}: {value}")
    for line in details:
        print(line)


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from vaecore.data.images import image_format, save_grid
    from vaecore.evaluation import metrics

    ec = _eval_config(args)
    _check_sampler([ec.sampler])
    _check_out(args.out)
    image_format(args.out)  # an extension it cannot honour is refused before any sampling
    if ec.sampler == "prior":
        import vaecore

        _check_device(ec.device)
        model = vaecore.load(args.model, device=ec.device)
        dataset = None
    else:
        model, dataset = _load_model_and_data(args.model, ec)
    folder = Path(args.model) if Path(args.model).is_dir() else None
    sampler = _sampler(model, ec.sampler, dataset, folder, ec.components)
    with torch.no_grad():
        images = metrics.generate(model, args.n, sampler=sampler, seed=ec.seed)
    path = save_grid(images, args.out, nrow=max(1, int(math.sqrt(args.n))))
    print(f"wrote {args.n} samples ({ec.sampler}) to {path}")


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

    ec = _eval_config(args, n_test=COMPARE_N_TEST)
    samplers = [s.strip() for s in ec.sampler.split(",") if s.strip()]
    _check_sampler(samplers)
    if not samplers:
        _fail("--sampler is empty; give at least one, e.g. prior")
    if args.layout not in compare.LAYOUTS:
        _fail(f"unknown layout {args.layout!r}; choose from {', '.join(compare.LAYOUTS)}")
    metric_names = [METRIC_ALIASES.get(m.strip(), m.strip()) for m in ec.metrics.split(",")
                    if m.strip()] if ec.metrics else None
    from vaecore.evaluation.metrics import METRICS

    unknown = [m for m in metric_names or [] if m not in METRICS]
    if unknown:
        _fail(f"unknown metric(s) {unknown}; choose from {', '.join(METRICS)}")
    out = _check_out(args.out)
    _check_device(ec.device)
    models, folders = {}, {}
    for spec, name in zip(args.models, _unique_names(args.models), strict=True):
        models[name] = vaecore.load(spec, device=ec.device)
        if Path(spec).is_dir():
            folders[name] = spec
    shapes = {name: tuple(m.config.input_shape) for name, m in models.items()}
    if len(set(shapes.values())) > 1:
        _fail(f"the models take different image shapes ({shapes}); compare models trained on the same data")
    first = next(iter(models.values()))
    dataset = vaecore.load_dataset(ec.data or first.config.dataset, ec.data_dir, seed=ec.seed)
    if tuple(dataset.shape) != tuple(first.config.input_shape):
        _fail(f"dataset {dataset.name!r} has images of shape {dataset.shape}, but the models take "
              f"{tuple(first.config.input_shape)}; pass the dataset they were trained on with --data")
    rows = compare.compare(models, dataset, samplers=samplers, metrics=metric_names, n_test=ec.n_test,
                           seed=ec.seed, folders=folders, progress=True)
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
    """The command line; the train / eval / sample / compare settings are flags generated from the config fields
    (`vaecore.cli_flags`)."""
    from vaecore.config import EvalConfig, TrainConfig

    p = CliParser(prog="vaecore", description="Train, evaluate and sample VAEs.")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of a failure (any position)")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list-models", help="list the model presets").set_defaults(func=cmd_list_models)

    t = sub.add_parser("train", help="train a preset into a run folder")
    t.add_argument("--model", help="preset name (see list-models)")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue the run in --out exactly (a flag that changes "
                   "the run is refused; epochs, steps, logging and device flags apply and are recorded)")
    t.add_argument("--settings", metavar="FILE", help="take the preset, training settings and model overrides from a "
                   f"JSON file ({{\"preset\", \"train\", \"overrides\"}}, as the app's {APP_RUN})")
    t.add_argument("--no-progress", action="store_true")
    add_flags(t.add_argument_group("training settings (TrainConfig; a preset may set its own defaults)"), TrainConfig)
    m = t.add_argument_group("model settings (each family takes its own; the others are refused)")
    add_model_flags(m)
    m.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override any model setting, e.g. --set k=10 --set likelihood_kwargs.sigma=learned")
    t.set_defaults(func=cmd_train)

    def model_args(q: argparse.ArgumentParser) -> None:
        q.add_argument("model", help="run folder, bundled checkpoint name or Hub repo id")
        add_flags(q, EvalConfig, ("data", "data_dir", "seed", "device", "sampler", "components", "deterministic"))

    e = sub.add_parser("eval", help="evaluate a model on its test set")
    model_args(e)
    add_flags(e, EvalConfig, ("metrics", "n_test", "iwae_k", "fid_weights"), defaults={"metrics": DEFAULT_EVAL})
    e.add_argument("--json", action="store_true", help="print one JSON object")
    e.set_defaults(func=cmd_eval)

    s = sub.add_parser("sample", help="write a grid of generated images")
    model_args(s)
    s.add_argument("--n", type=positive_int, default=64)
    s.add_argument("--out", default=SAMPLES)
    s.set_defaults(func=cmd_sample)

    c = sub.add_parser("compare", help="evaluate several models on the same test subset")
    c.add_argument("models", nargs="+")
    add_flags(c, EvalConfig, ("sampler", "metrics", "n_test", "seed", "data", "data_dir", "device", "deterministic"),
              defaults={"n_test": COMPARE_N_TEST})
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
    _add_data_commands(sub)
    return p


def _add_data_commands(sub: Any) -> None:
    d = sub.add_parser("data", help="inspect a dataset folder or file")
    dsub = d.add_subparsers(dest="data_command", required=True)
    i = dsub.add_parser("info", help="what a folder or file holds (count, sizes, modes, classes) and what loading it "
                                     "would convert; reads headers only")
    i.add_argument("path")
    i.add_argument("--format", help="the format (default: detected from the folder)")
    i.add_argument("--image-size", type=positive_int, help="as for train: the size it would be resized to")
    i.add_argument("--channels", type=int, choices=(1, 3), help="as for train: 1 (grey) or 3 (RGB)")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")
    i.add_argument("--no-progress", action="store_true")
    i.set_defaults(func=cmd_data_info)


def cmd_data_info(args: argparse.Namespace) -> None:
    from vaecore.data.inspect import describe, format_description

    info = describe(args.path, args.format, image_size=args.image_size, channels=args.channels,
                    progress=not args.no_progress)
    print(json.dumps(info, indent=2, default=str) if args.json else format_description(info))


class CliParser(argparse.ArgumentParser):
    """argparse with one-line errors that point at --help."""

    def error(self, message: str) -> NoReturn:
        _fail(f"{self.prog}: {message} (see {self.prog} --help)")


USER_ERRORS = (ValueError, KeyError, FileNotFoundError, NotADirectoryError, IsADirectoryError, TypeError)


def main(argv: list[str] | None = None) -> None:
    """Run one command; failures print one line (the traceback only with --debug) and exit non-zero."""
    import os

    from vaecore.training.guard import TrainingDiverged
    from vaecore.utils import WriteError

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
    except WriteError as e:  # a full disk, a read-only folder: the message names the file and what to do
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
