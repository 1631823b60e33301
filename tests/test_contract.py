"""The engine contract: a complete registry whatever the import order, no import cycles, per-family
configs, the capabilities metrics rely on, one IWAE code path, and legacy configs still loading."""

from __future__ import annotations

import ast
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from budget import seconds

import vaecore
from vaecore.components.context import StepContext
from vaecore.evaluation import metrics
from vaecore.hub import bundled_names
from vaecore.models.base import MODEL_TYPES
from vaecore.utils import evaluating

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "experiments"))
from zoo_common import check_images  # noqa: E402  (the model's own data: MNIST, or dSprites for the study's)

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "vaecore"


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=seconds(120))
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_registry_is_complete_in_a_fresh_interpreter_whatever_the_import_order() -> None:
    listed = subprocess.run([sys.executable, "-m", "vaecore", "list-models"], cwd=ROOT, capture_output=True,
                            text=True, timeout=seconds(120)).stdout.strip().splitlines()
    counts = {_run("import vaecore; print(len(vaecore.presets.PRESETS))"),
              _run("from vaecore.presets import PRESETS; print(len(PRESETS))"),
              _run("import vaecore.training.trainer, vaecore.presets as p; print(len(p.PRESETS))"),
              _run("from vaecore.models.base import MODEL_TYPES; import vaecore; print(len(vaecore.PRESETS))")}
    assert counts == {str(len(listed))}
    assert len(listed) == len(vaecore.PRESETS) >= 35
    for name in ("tvae", "info-vae-imq", "info-vae-rbf", "factor-vae", "svae", "iwae", "ae"):
        assert name in vaecore.PRESETS


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """vaecore modules a module imports anywhere in it: at the top, in functions, under TYPE_CHECKING
    (`from vaecore import files` imports the module vaecore.files)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaecore"):
            subs = {f"{node.module}.{a.name}" for a in node.names}
            found.update(subs & modules)
            if subs - modules:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("vaecore"))
    return found


# The engine's layers, lowest first (docs/architecture.md): a module imports only from its own unit (a package or
# module named here) and from lower layers. The preset registry sits below the families that register into it;
# the model card (labelled by the metric registry) above the evaluation it reads, registering the writer that
# save_pretrained uses; the comparison tables (over trained runs and samplers) at the top with the CLI.
LAYERS = (
    ("vaecore.runtime", "vaecore.files", "vaecore.limits"),
    ("vaecore.utils",),
    ("vaecore.data",),
    ("vaecore.config",),
    ("vaecore.components",),
    ("vaecore.models.base",),
    ("vaecore.presets",),
    ("vaecore.models",),
    ("vaecore.hub",),
    ("vaecore.latent",),
    ("vaecore.samplers",),
    ("vaecore.evaluation",),
    ("vaecore.model_card",),
    ("vaecore.training",),
    ("vaecore.evaluation.compare",),
    ("vaecore",),
    ("vaecore.cli_flags",),
    ("vaecore.cli",),
    ("vaecore.__main__",),
)


def _unit(module: str) -> tuple[int, str]:
    """(layer, unit) of a module: the longest unit name that is the module or a package above it."""
    units = [(layer, u) for layer, names in enumerate(LAYERS) for u in names
             if module == u or (u != "vaecore" and module.startswith(u + "."))]
    assert units, f"{module} is in no layer of LAYERS: add it"
    return max(units, key=lambda lu: len(lu[1]))


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in PKG.rglob("*.py")}
    return {m: {i for i in _imports(p, set(modules)) if i in modules and i != m} for m, p in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import cycle of `graph` (module → the modules it imports), as a path that ends where it starts, or None."""
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for dep in sorted(graph.get(m, ())):
            if state.get(dep) == 1:
                return path + [dep]
            if dep not in state and (found := visit(dep, path + [dep])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def test_no_import_cycles_and_no_private_imports_across_modules() -> None:
    graph = _graph()
    # a package's __init__ importing its own submodules is not a cycle with them
    graph = {m: {i for i in deps if not (m == i.rsplit(".", 1)[0] or i == m.rsplit(".", 1)[0])}
             for m, deps in graph.items()}
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("vaecore"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.relative_to(ROOT)} imports private {private} from {node.module}"


SCRIPT_DIRS = ("experiments", "bench")
APP_AND_SCRIPTS = [ROOT / "app.py", *sorted((ROOT / "pages").glob("*.py")), *sorted((ROOT / "explorer").rglob("*.py")),
                   *[p for d in SCRIPT_DIRS for p in sorted((ROOT / d).glob("*.py"))]]


def _private_uses(path: Path, ours: set[str]) -> list[str]:
    """Private names a module takes from another of ours (`ours`: top-level names of our packages and scripts):
    `from ours import _x`, and `name._x` where `name` was imported from ours (a module, a class, a function)."""
    tree = ast.parse(path.read_text())
    imported: set[str] = set()
    uses = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ours:
            uses += [f"from {node.module} import {a.name}" for a in node.names if a.name.startswith("_")]
            imported.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            imported.update((a.asname or a.name).split(".")[0] for a in node.names if a.name.split(".")[0] in ours)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in imported:
                uses.append(f"line {node.lineno}: {ast.unparse(node)}")
    return uses


def test_the_app_and_the_scripts_use_no_private_name_of_another_module() -> None:
    """The app (app.py, pages/, explorer/), the experiments and benchmarks read only public names of the engine, of
    explorer and of each other: a private name may change under them without notice."""
    ours = {"vaecore", "explorer"} | {p.stem for d in SCRIPT_DIRS for p in (ROOT / d).glob("*.py")}
    found = {str(p.relative_to(ROOT)): uses for p in [*APP_AND_SCRIPTS, *PKG.rglob("*.py")]
             if (uses := _private_uses(p, ours))}
    assert not found, found


def test_the_engine_imports_neither_streamlit_nor_the_app() -> None:
    """vaecore runs without the app: no module of it imports streamlit or explorer, not even inside a function."""
    found = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in names
                      if n.split(".")[0] in ("streamlit", "explorer")]
    assert not found, found


def test_the_experiments_import_each_other_without_a_cycle() -> None:
    """experiments/ scripts import one another by name (function-level imports included): no circle among them."""
    scripts = {p.stem: p for p in (ROOT / "experiments").glob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in scripts.items():
        deps = graph.setdefault(name, set())
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module in scripts:
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in scripts)
        deps.discard(name)
    cycle = _cycle(graph)
    assert cycle is None, f"import cycle among experiments/: {' -> '.join(cycle or [])}"


def test_imports_go_down_the_layers_function_level_imports_included() -> None:
    upward = []
    for m, deps in _graph().items():
        layer, unit = _unit(m)
        for dep in deps:
            dep_layer, dep_unit = _unit(dep)
            if dep_unit != unit and dep_layer >= layer:
                upward.append(f"{m} ({unit}) imports {dep} ({dep_unit})")
    assert not upward, "imports against the layer order (tests/test_contract.py LAYERS):\n" + "\n".join(sorted(upward))


def test_no_engine_module_is_over_650_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PKG.rglob("*.py") if (n := len(p.read_text().splitlines())) > 650}
    assert not long


@pytest.mark.parametrize("name", sorted(vaecore.PRESETS))
def test_each_preset_builds_its_family_and_saves_only_its_fields(name: str, tmp_path: Path) -> None:
    model = vaecore.build_preset(name, input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
    cls = MODEL_TYPES[model.model_type]
    assert type(model) is cls and type(model.config) is cls.config_class
    saved = model.config.to_dict()
    assert set(saved) == {f for f in cls.config_class.__dataclass_fields__}
    assert "regulariser" not in saved
    if model.model_type in ("vae", "tvae", "svae") or "iwae" in model.model_type:
        assert not {k for k in saved if k.startswith(("mmd_", "rae_"))} or model.model_type == "tvae"
    caps = model.capabilities
    assert caps.latent_shape == (4,)
    x = torch.rand(6, 1, 8, 8)
    out = model.train().loss(x, StepContext(step=0, total_steps=10, dataset_size=100))
    assert torch.isfinite(out.loss) and "loss" in out.logs
    groups = model.param_groups()
    ids = [id(p) for g in groups for p in g.params]
    assert len(ids) == len(set(ids)) == len([p for p in model.parameters() if p.requires_grad])
    for g in groups:
        assert torch.isfinite(out.for_group(g.name))
    model.eval()
    with torch.no_grad():
        assert model.embed(x).shape == (6, 4)
        assert model.reconstruct(x).shape == x.shape
        if caps.elbo:
            assert model.elbo(x).shape == (6,)
            elbo = float(model.elbo(x, n_samples=200).mean())
            log_w = model.log_importance_weights(x, 200)
            iwae = float((torch.logsumexp(log_w, 0) - math.log(200)).mean())
            assert iwae >= elbo - 0.01 * abs(elbo), (iwae, elbo)
        else:
            with pytest.raises(ValueError) as refused:
                model.elbo(x)
            assert caps.why_no_elbo and caps.why_no_elbo in str(refused.value)


def test_model_type_cannot_be_overridden() -> None:
    with pytest.raises(ValueError, match="model_type is fixed by the preset"):
        vaecore.model_config("sigma-vae", model_type="tvae")


def test_family_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="'k' must be >= 1"):
        vaecore.model_config("iwae", k=0)
    with pytest.raises(ValueError, match="'beta' must be float or int"):
        vaecore.model_config("sigma-vae", beta="abc")
    with pytest.raises(ValueError, match="unknown setting"):
        vaecore.model_config("ae", beta=2.0)


@pytest.mark.parametrize("name", bundled_names())
def test_metrics_iwae_is_the_models_own_bound(name: str) -> None:
    model = vaecore.load(name)
    if not model.capabilities.elbo:
        assert metrics.undefined_reason(model, "iwae") == model.capabilities.why_no_elbo
        return
    x = check_images(model, 4)
    with torch.no_grad():
        ours = metrics.iwae_log_likelihood(model, x, k=8, batch_size=4, chunk=8,
                                           generator=torch.Generator().manual_seed(3))
        with evaluating(model):  # the metric's kernels and memory format: the same rounding (the
            q = model.posterior(x)   # Poincaré ball turns a 1-ulp change of μ into 1e-3 nats)
            direct = model.log_importance_weights(x, 8, torch.Generator().manual_seed(3), posterior=q)
    assert torch.allclose(ours, (torch.logsumexp(direct.double(), 0) - math.log(8)).cpu(), atol=1e-6)


def test_legacy_flat_config_still_loads(tmp_path: Path) -> None:
    folder = tmp_path / "old-wae"
    model = vaecore.build_preset("wae-mmd-imq", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0)
    model.save_pretrained(folder)
    flat = {**model.config.to_dict(), "model_type": "vae", "regulariser": "mmd", "beta": 1.0, "iwae_k": 5,
            "rae_embedding_weight": 1e-4, "rae_penalty": "l2", "rae_penalty_weight": 1e-7, "prior": "normal",
            "vamp_components": 50}
    (folder / "config.json").write_text(json.dumps(flat))
    loaded = vaecore.load(folder)
    assert loaded.model_type == "wae" and loaded.config.mmd_kernel == "imq"
    x = torch.rand(3, 1, 8, 8)
    assert torch.equal(loaded.embed(x), model.eval().embed(x))


def test_iwae_with_the_analytic_sigma_fits_sigma_to_its_draws() -> None:
    data = vaecore.load_dataset("mnist", limit=1000)
    torch.manual_seed(0)
    model = vaecore.build_preset("iwae", input_shape=data.shape, arch="mlp", likelihood="gaussian",
                                 likelihood_kwargs={"sigma": "optimal"}, seed=0).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for step in range(150):
        x = data.x_train[(step * 64) % 960:(step * 64) % 960 + 64]
        out = model.loss(x, StepContext(step=step))
        opt.zero_grad()
        out.loss.backward()
        opt.step()
    # the step's σ* and the EMA that defines the density afterwards have both left σ = 1 (ln σ = 0) far behind
    assert out.logs["log_sigma"] < -1.5 and out.logs["log_sigma_ema"] < -1.0
    assert float(model.likelihood.log_sigma) == pytest.approx(out.logs["log_sigma_ema"])


def test_arelbo_is_refused_for_iwae() -> None:
    with pytest.raises(ValueError, match="per-sample density"):
        vaecore.build_preset("iwae", likelihood="arelbo")


def test_input_checks_at_the_model_boundary() -> None:
    model = vaecore.build_preset("sigma-vae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4, seed=0).eval()
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match="floating point"):
        model.elbo((x * 255).to(torch.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\].*divide 8-bit images by 255"):
        model.elbo(x * 255)
    with pytest.raises(ValueError, match="NaN"):
        model.elbo(torch.full_like(x, float("nan")))
    with pytest.raises(ValueError, match="n_samples"):
        model.elbo(x, n_samples=0)


def test_model_card_states_the_refused_likelihoods(tmp_path: Path) -> None:
    vaecore.build_preset("iwae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4).save_pretrained(tmp_path / "i")
    vaecore.build_preset("svae", input_shape=(1, 8, 8), arch="mlp", latent_dim=4).save_pretrained(tmp_path / "s")
    assert "| likelihoods refused | arelbo: the IWAE bound needs a per-sample density" in \
        (tmp_path / "i" / "README.md").read_text()
    assert "| likelihoods refused | none" in (tmp_path / "s" / "README.md").read_text()
