"""Does DIPOLE improve on the IL policy it starts from? IL vs DIPOLE (omega sweep) vs EWR, over seeds.

    python benchmarks/dipole_vs_il.py [--seeds 0 1 2] [--out outputs/dipole_vs_il] [key=value ...]

For every seed: one imitation run (``stages=[il]``), then from its ``il_model`` a DIPOLE run and an EWR run
with the same rollout/update budget (``configs/train/demo.yaml`` values unless overridden). Every run is
evaluated on the synthetic test split (logs disjoint from training; the IL row uses the same scenes and
initial noise). omega is chosen on a held-out split by ``launch/evaluate.py --select-omega`` on the DIPOLE
model (an evaluation, not a training run). Prints per-seed and mean tables (PDMS, NC, DAC, EP) and the
DIPOLE - IL gain; writes ``summary.json``. Extra ``key=value`` arguments go to every training run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "launch" / "finetune.py"
EVALUATE = REPO_ROOT / "launch" / "evaluate.py"
METRICS = ("PDMS", "NC", "DAC", "EP", "C", "TTC")


def run(args: list[str], script: Path = SCRIPT) -> None:
    cmd = [sys.executable, str(script)] + args + (["progress_bars=false"] if script == SCRIPT else ["--no-progress"])
    print("$", " ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=True)


def results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())["results"]


def rollout_curve(out: Path, stage: str) -> list[float]:
    """Mean PDMS of each round's training rollouts (round 0 = mu_0's own samples), in percent."""
    history = json.loads((out / "results.json").read_text()).get("history", [])
    return [100.0 * row[f"{stage}/rollout/PDMS"] for row in history if f"{stage}/rollout/PDMS" in row]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("outputs/dipole_vs_il"))
    parser.add_argument("--skip-ewr", action="store_true")
    parser.add_argument("--select-split", default="synthetic_val",
                        help="held-out split (logs disjoint from training) on which omega is chosen; '' to skip")
    parser.add_argument("--data-root", default="data/synthetic", help="the runs' data.data_root")
    parser.add_argument("--omegas", default="0,0.5,1,2,4", help="omegas tried on the selection split")
    parser.add_argument("--eval-seed", default="1234", help="sampling seed of the selection (eval.seed)")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    table: dict[str, dict[str, list[float]]] = {}
    per_seed = {}
    for seed in args.seeds:
        root = args.out / f"seed{seed}"
        common = [f"seed={seed}", f"data.data_root={args.data_root}",
                  f"data.metric_cache_dir={args.out / 'metric_cache'}"] + list(args.overrides)
        if not (root / "il" / "il_model").is_dir():
            run(common + ["stages=[il]", f"output_dir={root / 'il'}"])
        init = f"model.init_checkpoint={root / 'il' / 'il_model'}"
        if not (root / "dipole" / "results.json").is_file():
            run(common + ["stages=[dipole]", init, f"output_dir={root / 'dipole'}"])
        rows = dict(results(root / "dipole"))
        if not args.skip_ewr:
            if not (root / "ewr" / "results.json").is_file():
                run(common + ["stages=[ewr]", init, f"output_dir={root / 'ewr'}"])
            rows["ewr"] = results(root / "ewr")["ewr"]
        if args.select_split:
            val = root / "omega_selection"
            if not (val / "selected_omega.json").is_file():  # an evaluation of the trained policy
                run(["--checkpoint", str(root / "dipole" / "model"), "--split", args.select_split, "--data-root",
                     args.data_root, "--omegas", args.omegas, "--seeds", args.eval_seed, "--metrics", "v1",
                     "--two-stage", "off", "--report-worst", "0", "--report-sample", "0",
                     "--output-dir", str(val), "--select-omega"], EVALUATE)
            from navsim_eval.evaluation import read_rows
            from navsim_eval.evaluation.pipeline import table_results

            rows["_selection"] = table_results(read_rows(val / "results.csv"), "v1")
        per_seed[seed] = rows
        curves = {"dipole": rollout_curve(root / "dipole", "dipole")}
        if not args.skip_ewr:
            curves["ewr"] = rollout_curve(root / "ewr", "ewr")
        for stage, curve in curves.items():
            print(f"seed {seed} {stage}: train-rollout PDMS per round {np.round(curve, 1).tolist()}")
        rows["_rollout_curves"] = curves
        for label, entry in rows.items():
            if label.startswith("_"):
                continue
            for m in METRICS:
                table.setdefault(label, {}).setdefault(m, []).append(100.0 * entry.get(m, float("nan")))
    print("\nMean over seeds", args.seeds, "(percent; +- std over seeds)")
    print("| policy | " + " | ".join(METRICS) + " |")
    print("|---|" + "---|" * len(METRICS))
    for label, entry in table.items():
        cells = [f"{np.mean(v):.1f} +- {np.std(v):.1f}" for v in (entry[m] for m in METRICS)]
        print(f"| {label} | " + " | ".join(cells) + " |")
    il = np.array(table["il"]["PDMS"])
    for label, entry in table.items():
        if label.startswith("dipole") or label == "ewr":
            gain = np.array(entry["PDMS"]) - il
            print(f"{label}: PDMS gain over IL {gain.mean():+.2f} (per seed {np.round(gain, 2).tolist()})")
    if args.select_split:
        omegas = [k for k in table if k.startswith("dipole")]
        val_mean = {k: np.mean([100.0 * per_seed[s]["_selection"][k]["PDMS"] for s in args.seeds]) for k in omegas}
        best = max(val_mean, key=val_mean.get)
        print(f"\nomega chosen on {args.select_split} (mean PDMS over seeds): "
              + ", ".join(f"{k.split()[-1]}: {v:.1f}" for k, v in val_mean.items()) + f" -> {best}")
        gain = np.array(table[best]["PDMS"]) - il
        for m in ("NC", "DAC"):
            delta = np.mean(table[best][m]) - np.mean(table["il"][m])
            print(f"  {best} vs IL on the test split: {m} {delta:+.2f}")
        print(f"  {best} vs IL on the test split: PDMS {gain.mean():+.2f} (per seed {np.round(gain, 2).tolist()})")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.json").write_text(json.dumps({"per_seed": per_seed, "table": table}, indent=2))


if __name__ == "__main__":
    main()
