"""The disentanglement study's tables, generated from experiments/results/disentanglement/*.json (written by
experiments/disentanglement.py): every metric as mean ± s.d. over seeds and per seed, per family, beside the
published numbers where a paper tables them; into docs/disentanglement.md (between its markers) and a marked
section of checkpoints/RESULTS.md (experiments/zoo_table.py includes it).

    python experiments/disentanglement.py table            # print
    python experiments/disentanglement.py table --write    # refresh docs/disentanglement.md and RESULTS.md
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from disentanglement_study import FAMILIES, title

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results" / "disentanglement"
DOC = ROOT / "docs" / "disentanglement.md"
RESULTS_MD = ROOT / "checkpoints" / "RESULTS.md"
BEGIN, END = "<!-- disentanglement-table:begin -->", "<!-- disentanglement-table:end -->"
COLUMNS = ("beta-vae-score", "factor-vae-score", "mig", "sap", "dci", "dci-completeness", "dci-informativeness",
           "modularity", "elbo")
PUBLISHED = {
    ("vae", "beta-vae-score"): "61.6 % (a)",
    ("beta-vae", "beta-vae-score"): "99.2 % (a)",
}
PUBLISHED_NOTES = [
    "(a) Higgins et al. 2017, Table 1 (dSprites, their own classifier, trained to convergence).",
    "The FactorVAE score (Kim & Mnih 2018), MIG (Chen et al. 2018) and the dSprites distributions of every metric "
    "in Locatello et al. 2019 are published as figures only, with no table to quote; Burgess et al. 2018 report no "
    "metric. Chen et al.'s MIG is another estimator (posterior samples, dSprites' shape left out), not comparable.",
]


def load(results: Path = RESULTS) -> list[dict[str, Any]]:
    """Every result record, in family and seed order."""
    records = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    order = {f: i for i, f in enumerate(FAMILIES)}
    return sorted(records, key=lambda r: (order.get(r["family"], 99), r["steps"], r["seed"]))


def _title(family: str) -> str:
    return title(family) if family in FAMILIES else family


def _labels() -> dict[str, str]:
    from vaecore.evaluation.registry import METRICS

    return {k: METRICS[k].short_title for k in COLUMNS}


def _fmt(v: float | None, key: str) -> str:
    if v is None:
        return "–"
    return f"{v:.1f}" if key == "elbo" else f"{v:.3f}"


def mean_sd(values: list[float], key: str) -> str:
    if not values:
        return "–"
    if len(values) == 1:
        return f"{_fmt(values[0], key)} (1 seed)"
    return f"{_fmt(statistics.mean(values), key)} ± {_fmt(statistics.stdev(values), key)}"


PAPER_STEPS, PAPER_BATCH = 300_000, 64  # Locatello et al. 2019's budget for every dSprites model
CLASSIFIER_SCORES = ("beta-vae-score", "factor-vae-score")


def train_images(data: str) -> int:
    """The training split's size of the study's data (the grid less its seed-0 test and validation hold-outs)."""
    from vaecore.data import sprites
    from vaecore.data.datasets import holdout_rows

    if not data.startswith("dsprites"):
        raise ValueError(f"the study's data is dSprites, not {data!r}")
    return len(holdout_rows(sprites.n_images(), 0, test=True)[0])


def budget_lines(records: list[dict[str, Any]]) -> list[str]:
    """What the study's budget is, beside the papers', said plainly (from the records)."""
    steps = sorted({r["steps"] for r in records})
    batch, threads = records[0]["batch_size"], sorted({r["threads"] for r in records})
    n = train_images(records[0]["data"])
    hours = sum(r["train_seconds"] for r in records) / 3600
    each = "; ".join(f"{k:,} steps: {k * batch:,} images, {k * batch / n:.1%} of one pass over the {n:,} training "
                     f"images, {PAPER_STEPS * PAPER_BATCH / (k * batch):,.0f} × less than Locatello et al."
                     for k in steps)
    return [f"**Budget per model: {' or '.join(f'{k:,}' for k in steps)} steps of batch {batch}** ({each}) on "
            f"{', '.join(map(str, threads))} CPU thread(s) of a shared 2-core machine ({hours:.1f} h of training for "
            f"the {len(records)} model(s) so far). Locatello et al. 2019 train every dSprites model {PAPER_STEPS:,} "
            f"steps of batch {PAPER_BATCH}, and Pythae's β-TC-VAE row 50 epochs of all 737,280 images. These are "
            "early-training numbers, far below the papers' budgets: they check the pipeline end to end and compare "
            "families only within one budget; they reproduce no published number. The GPU script trains the same "
            "study at 300,000 steps (`bash bench/gpu_session.sh disentanglement`).", ""]


def budget_gives(records: list[dict[str, Any]]) -> list[str]:
    """What each budget gives, from the records: how much the codes carry (KL) and how many dimensions collapsed."""
    lines = []
    for steps in sorted({r["steps"] for r in records}):
        kl = [(r["result"].get("kl-per-dim_total"), r["result"].get("kl-per-dim_collapsed"),
               len(r["result"].get("kl-per-dim") or [])) for r in records if r["steps"] == steps]
        kl = [k for k in kl if k[0] is not None]
        if not kl:
            continue
        lo, hi = min(k[0] for k in kl), max(k[0] for k in kl)
        span = f"{lo:.3g}" if f"{lo:.3g}" == f"{hi:.3g}" else f"{lo:.3g}–{hi:.3g}"
        line = (f"What {steps:,} steps give: the total KL of the codes is {span} nats per image, with "
                + ", ".join(f"{k[1]} of {k[2]}" for k in kl) + " dimensions collapsed (KL < 0.01 nats) in the "
                f"{len(kl)} model(s) (first 2,000 test images).")
        if hi < 1.0:
            line += (" The codes carry almost no information about the images yet (every family is still at the "
                     "posterior-collapse stage of early training), so the scores of these models are those of "
                     "near-uninformative codes: they do not measure how well any family disentangles.")
        lines += [line, ""]
    return lines


def chance_lines(records: list[dict[str, Any]]) -> list[str]:
    """Which models' classifier scores are at chance, by a stated rule."""
    rows, at, labels = 0, [], _labels()
    for r in records:
        details = r["result"].get("disentanglement", {}).get("metrics", {})
        for k in CLASSIFIER_SCORES:
            v, se, chance = r["result"].get(k), r["result"].get(f"{k}_se"), details.get(k, {}).get("chance")
            if v is None or se is None or chance is None:
                continue
            rows += 1
            if abs(v - chance) <= 2 * se:
                at.append(f"{_title(r['family'])} seed {r['seed']} {labels[k]} {v:.3f}")
    if not rows:
        return []
    return [f"Chance level of the two classifier scores is 1/K ({', '.join(sorted(chance_levels(records)))}); a "
            "score within 2 binomial SE of it is at chance: " + ("; ".join(at) if at else "none") + ".", ""]


def chance_levels(records: list[dict[str, Any]]) -> set[str]:
    out = set()
    for r in records:
        for k in CLASSIFIER_SCORES:
            c = r["result"].get("disentanglement", {}).get("metrics", {}).get(k, {}).get("chance")
            if c is not None:
                out.add(f"{c:.2f}")
    return out


def table(records: list[dict[str, Any]]) -> list[str]:
    """Markdown: the budget, the summary (mean ± s.d. over seeds), the per-seed rows and the settings."""
    if not records:
        return ["No results yet: run `python experiments/disentanglement.py train`."]
    labels = _labels()
    families = [f for f in FAMILIES if any(r["family"] == f for r in records)]
    groups = [(f, n) for f in families for n in sorted({r["steps"] for r in records if r["family"] == f})]
    lines = [*budget_lines(records), *budget_gives(records),
             "Every metric as mean ± s.d. over seeds (the s.d. of the seeds' values, n − 1; "
             "one seed: its value alone, no spread), per family and budget (models of different budgets are never "
             "pooled):", "",
             "| family | seeds | steps | " + " | ".join(labels[k] for k in COLUMNS) + " |",
             "|" + " --- |" * (3 + len(COLUMNS))]
    for f, n in groups:
        rs = [r for r in records if r["family"] == f and r["steps"] == n]
        cells = [mean_sd([r["result"][k] for r in rs if r["result"].get(k) is not None], k) for k in COLUMNS]
        lines.append(f"| {_title(f)} | {len(rs)} | {n} | " + " | ".join(cells) + " |")
    pub = [f for f in families if any((f, k) in PUBLISHED for k in COLUMNS)]
    if pub:
        lines += ["", "Published (dSprites):", "", "| family | " + " | ".join(labels[k] for k in COLUMNS) + " |",
                  "|" + " --- |" * (1 + len(COLUMNS))]
        for f in pub:
            lines.append(f"| {_title(f)} | " + " | ".join(PUBLISHED.get((f, k), "–") for k in COLUMNS)
                         + " |")
        lines += ["", *PUBLISHED_NOTES]
    lines += ["", "Per seed (± is the binomial standard error of the two classifier scores over their eval votes):", "",
              "| family | seed | steps | " + " | ".join(labels[k] for k in COLUMNS) + " | train s | eval s |",
              "|" + " --- |" * (5 + len(COLUMNS))]
    for r in records:
        res = r["result"]
        cells = []
        for k in COLUMNS:
            c = _fmt(res.get(k), k)
            if res.get(f"{k}_se") is not None:
                c += f" ± {res[f'{k}_se']:.3f}"
            cells.append(c)
        lines.append(f"| {_title(r['family'])} | {r['seed']} | {r['steps']} | " + " | ".join(cells)
                     + f" | {r['train_seconds']:.0f} | {r['eval_seconds']:.0f} |")
    lines += ["", *chance_lines(records), settings_line(records[0])]
    return lines


def _count(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) else "?"


def settings_line(record: dict[str, Any]) -> str:
    """The estimator settings and library versions of a record."""
    m = record["result"].get("disentanglement", {}).get("metrics", {})
    s = {k: v.get("settings", {}) for k, v in m.items()}
    mig, dci, bv, fv = s.get("mig", {}), s.get("dci", {}), s.get("beta-vae-score", {}), s.get("factor-vae-score", {})
    n_test = _count(record["result"]["settings"].get("n_test"))
    return (f"Settings: {n_test} test images of {record['data']}; MIG and modularity on {mig.get('bins', '?')} "
            f"equal-width bins; SAP and DCI on a {dci.get('train_points', '?')} / "
            f"{dci.get('test_points', '?')} split ({dci.get('estimator', '?')}); β-VAE score: {bv.get('batch', '?')} "
            f"pairs per vote, {bv.get('train_votes', '?')} train / {bv.get('eval_votes', '?')} eval votes; FactorVAE "
            f"score: batch {fv.get('batch', '?')}, {fv.get('train_votes', '?')} / {fv.get('eval_votes', '?')} votes, "
            f"{_count(fv.get('variance_points'))} points for the scales; seed 0; numpy {mig.get('numpy', '?')}, "
            f"scikit-learn {mig.get('scikit-learn', '?')}, torch {record.get('torch', '?')}; training: Adam "
            f"{record['lr']}, batch {record['batch_size']}, {record['threads']} CPU thread(s). ELBO in nats per image "
            "(Bernoulli decoder, the first 2,000 test images).")


PYTHAE_RESULT = ROOT / "experiments" / "results" / "disentanglement-pythae-tcvae.json"


def pythae_lines(path: Path = PYTHAE_RESULT) -> list[str]:
    """Pythae's β-TC-VAE dSprites row beside ours (`disentanglement.py pythae-tcvae`), with where we stopped."""
    if not path.is_file():
        return ["Pythae's β-TC-VAE dSprites row: not run yet (`python experiments/disentanglement.py pythae-tcvae`)."]
    r = json.loads(path.read_text())
    done, target = r["epochs_done"], r["epochs_target"]
    return ["Pythae's β-TC-VAE dSprites row (chen-mlp, β = 6, α = γ = 1, minibatch-weighted sampling, batch "
            f"{r['batch_size']}, Adam {r['lr']} with ε = {r['eps']}); both values as losses in nats per image, lower "
            "is better:", "",
            "| source | epochs | ELBO (loss) | modified ELBO (loss) |", "| --- | --- | --- | --- |",
            f"| Pythae 0.1.2, published | {target} | {r['published']['elbo']:.2f} | "
            f"{r['published']['modified_elbo']:.2f} |",
            f"| the reference code (as Pythae reports it) | {target} | {r['code']['elbo']:.2f} | "
            f"{r['code']['modified_elbo']:.2f} |",
            f"| ours, stopped at step {r['steps']:,} | {done:.3f} | {r['ours']['elbo']:.2f} | "
            f"{r['ours']['modified_elbo']:.2f} |", "",
            f"**Where we stopped: {r['steps']:,} steps, {done:.3f} of the {target} epochs "
            f"({done / target:.2%} of Pythae's budget)**, on {r.get('threads', 1)} CPU thread(s) of this shared "
            f"machine; ours on the first {r['n_test']:,} held-out test images ({r['note']}). At this budget the "
            "row is not reproduced: the numbers show the configuration runs end to end; the full row needs the GPU "
            "phase (`bash bench/gpu_session.sh pythae-tcvae`, resumable).", ""]


def results_section(results: Path = RESULTS) -> list[str]:
    """The marked section of checkpoints/RESULTS.md."""
    return [BEGIN, "#### Disentanglement on procedural dSprites", "",
            "Generated by `python experiments/disentanglement.py table --write`; see `docs/disentanglement.md`.", "",
            *table(load(results)), "", *pythae_lines(), END]


def replace_section(path: Path, section: str) -> None:
    """Replace (or append) the marked section of a file, leaving the rest as it is."""
    old = path.read_text() if path.is_file() else ""
    if BEGIN in old and END in old:
        new = old[:old.index(BEGIN)] + section + old[old.index(END) + len(END):]
    else:
        new = old.rstrip("\n") + ("\n\n" if old else "") + section + "\n"
    path.write_text(new)


def write(results: Path = RESULTS, write_files: bool = False, echo: bool = True) -> str:
    """The section as text; with `write_files`, into docs/disentanglement.md and checkpoints/RESULTS.md."""
    section = "\n".join(results_section(results))
    if write_files:
        replace_section(DOC, section)
        replace_section(RESULTS_MD, section)
    if echo:
        print(section)
    return section
