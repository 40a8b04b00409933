"""Does the reward make DIPOLE better than its imitation start? IL vs DIPOLE vs a reward-free control vs EWR.

    python benchmarks/dipole_vs_il.py [--seeds 0 1 2] [--out outputs/dipole_vs_il] [--ewr-betas 5 10 20]
                                      [--data-root data/synthetic] [key=value ...]

For every training seed: one imitation run (``stages=[il]``); from its ``il_model`` a DIPOLE run, the same
DIPOLE run with the reward removed (``dipole.beta`` = ``NO_REWARD_BETA``: every weight is 0.5, so both
branches learn the same thing and only the reward can make them differ) and one EWR run per temperature, all
with the demo recipe (``configs/train/demo.yaml``) unless overridden. Extra ``key=value`` arguments go to every
run.

Every policy is then evaluated by ``navsim_eval.evaluation`` on the validation split (choice of omega and of the
EWR temperature, mean over seeds) and on the test split (unseen maps): ``SAMPLES_PER_SCENE`` samples per scene
with the training seed's own evaluation seed, the same initial noise for every row (noise per scene token).
Rows: standing still, constant velocity, constant turn rate (current speed and yaw rate held), the logged
human, IL, DIPOLE and the control at every omega, EWR; and for IL the input ablations (cameras zeroed, cameras
taken from a scene of another log, driving command forced to "forward" on the scenes whose command turns, where
the plans' final heading towards the command is reported too). Each row's PDMS gain over IL has a paired 95 %
confidence interval over scenes (per-scene means over samples; the mean table averages each scene over seeds first).
The per-round training-rollout PDMS and weight statistics come from each run's tensorboard log. Writes
``summary.json`` and ``summary.md`` under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np

from data_pipelines.types import DRIVING_COMMANDS, TURN_COMMAND_SIGNS
from navsim_eval import names

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "launch" / "finetune.py"

NO_REWARD_BETA = 1e-6
"""Reward-free control: sigma(1e-6 G) = 0.5 to within 1e-6 (|G| < 3 for the group-normalised G with K + 1 = 9,
|G| <= 1 for the centred one)."""
SAMPLES_PER_SCENE = 4
EWR_TEMPERATURES = (5.0, 10.0, 20.0)
"""EWR temperatures tried by default, on the scale of the demo's G (score minus group mean, scores in [0, 1]):
half, once and twice the demo's DIPOLE beta."""
EVAL_SEED_OFFSET = 1000
"""Evaluation seed of training seed s: s + EVAL_SEED_OFFSET (own noise per training seed)."""
Z_95 = 1.959964
"""Two-sided 95 % normal quantile (paired differences over >= 100 scenes)."""
METRIC_VERSION = "v1"
TABLE = ((names.SCORE_SHORT_NAME[METRIC_VERSION], names.SCORE_COLUMN),) + tuple(
    (short, names.BY_SHORT[short].column) for short in ("NC", "DAC", "EP", "TTC", "C"))
"""(short name, result column) of the table, PDMS first."""
COMMAND_FORWARD = DRIVING_COMMANDS.index("forward")
"""Index of "forward" in the one-hot driving command (order of ``data_pipelines.types.DRIVING_COMMANDS``)."""
ROLLOUT_TAGS = ("rollout/PDMS", "rollout/mean_sigmoid_beta_G", "rollout/mean_abs_G", "rollout/zero_variance_group_frac",
                "drift/l2_to_mu0_m")
IL_LABEL = "IL"
END_HEADING = "end heading (deg)"
"""Per-scene extra of ``per_scene``: the plan's heading at its last pose (ego frame, degrees, left positive)."""


# ------------------------------------------------------------------------------------------------- training
def train(args: list[str]) -> None:
    """One ``launch/finetune.py`` run; its CPU threads are $OMP_NUM_THREADS when set (e.g. 1 for seeds run side by
    side), else the trainer's default (every CPU of this process)."""
    threads = [f"cpu_threads={os.environ['OMP_NUM_THREADS']}"] if os.environ.get("OMP_NUM_THREADS") else []
    cmd = [sys.executable, str(SCRIPT)] + args + threads + ["progress_bars=false", "eval.enabled=false"]
    print("$", " ".join(cmd), flush=True)
    # this checkout's packages, not whatever copy is installed (a script's own folder heads sys.path, not the cwd)
    env = dict(os.environ,
               PYTHONPATH=os.pathsep.join([str(REPO_ROOT)] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    subprocess.run(cmd, cwd=REPO_ROOT, env=env, check=True)


def train_seed(root: Path, seed: int, data_root: Path, ewr_betas: list[float], overrides: list[str]) -> dict[str, Path]:
    """Train (or reuse) every policy of one seed on the world at ``data_root``; returns {run name: output dir}."""
    common = [f"seed={seed}", f"data.data_root={data_root}", f"data.metric_cache_dir={root.parent / 'metric_cache'}"]
    common += overrides
    runs = {"il": root / "il"}
    if not (runs["il"] / "il_model").is_dir():
        train(common + ["stages=[il]", f"output_dir={runs['il']}"])
    init = f"model.init_checkpoint={runs['il'] / 'il_model'}"
    jobs = {"dipole": ["stages=[dipole]"], "control": ["stages=[dipole]", f"dipole.beta={NO_REWARD_BETA}"]}
    jobs.update({f"ewr_beta{b:g}": ["stages=[ewr]", f"ewr.beta={b}"] for b in ewr_betas})
    for name, extra in jobs.items():
        runs[name] = root / name
        if not (runs[name] / "model").is_dir():
            train(common + extra + [init, f"output_dir={runs[name]}"])
    return runs


def rollout_rounds(run_dir: Path) -> list[dict[str, float]]:
    """Per-round training-rollout statistics from the run's tensorboard events (percent for PDMS)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    files = sorted(run_dir.glob("logs/**/events.out.tfevents.*"))
    if not files:
        return []
    acc = EventAccumulator(str(files[-1].parent))
    acc.Reload()
    tags = acc.Tags().get("scalars", [])
    rounds: dict[int, dict[str, float]] = {}
    for tag in tags:
        stage, _, name = tag.partition("/")
        if name in ROLLOUT_TAGS:
            for index, event in enumerate(acc.Scalars(tag)):
                value = 100.0 * event.value if name == "rollout/PDMS" else event.value
                rounds.setdefault(index, {})[name] = value
    return [rounds[i] for i in sorted(rounds)]


# ------------------------------------------------------------------------------------------------- evaluation
class AblatedProcessor:
    """The model's processor with one input removed: ``cameras_zeroed`` or ``command_forward``."""

    def __init__(self, processor, ablation: str):
        self.processor = processor
        self.ablation = ablation

    def __call__(self, agent_inputs):
        import torch

        if self.ablation == "command_forward":
            agent_inputs = [self._forward_command(a) for a in agent_inputs]
        batch = self.processor(agent_inputs)
        if self.ablation == "cameras_zeroed":
            batch["pixel_values"] = torch.zeros_like(batch["pixel_values"])
        return batch

    @staticmethod
    def _forward_command(agent_input):
        statuses = list(agent_input.ego_statuses)
        command = np.zeros_like(np.asarray(statuses[-1].driving_command))
        command[COMMAND_FORWARD] = 1
        statuses[-1] = replace(statuses[-1], driving_command=command)
        return replace(agent_input, ego_statuses=statuses)


def camera_donors(loader) -> dict[str, str]:
    """For the ``cameras_shuffled`` ablation: each scene's camera donor, a scene of another log.

    Scenes in log order; the donor of the i-th is the (i + n/2)-th (mod n), moved on to the next scene of
    another log where that one shares the log. Neighbouring scenes of one log are 0.5 s apart and their
    images nearly equal, so a donor from the same log would leave the cameras' content in place."""
    per_log = loader.get_tokens_list_per_log()
    order = [(log, token) for log in sorted(per_log) for token in per_log[log]]
    if len(per_log) < 2:
        raise ValueError("the cameras_shuffled ablation needs scenes of at least two logs")
    n, donors = len(order), {}
    for i, (log, token) in enumerate(order):
        j = (i + n // 2) % n
        while order[j][0] == log:
            j = (j + 1) % n
        donors[token] = order[j][1]
    return donors


def shuffled_cameras_planner(il, loader, **kwargs):
    """IL planning with every scene's cameras replaced by its donor's (:func:`camera_donors`)."""
    from navsim_eval.evaluation import ModelPlanner
    from navsim_eval.evaluation.planners import PlanningBatch
    from vla.sampling import PolicySampler

    donors = camera_donors(loader)

    class ShuffledCamerasPlanner(ModelPlanner):
        def plan(self, batch: PlanningBatch):
            inputs = [replace(a, cameras=loader.get_agent_input_from_token(donors[t]).cameras)
                      for a, t in zip(batch.agent_inputs, batch.tokens)]
            return super().plan(PlanningBatch(batch.tokens, inputs, batch.scenes))

    return ShuffledCamerasPlanner(PolicySampler(il), **kwargs)


ABLATIONS = ("cameras_zeroed", "cameras_shuffled", "command_forward")
MODEL_FREE_ROWS = ("standing_still", "constant_velocity", "constant_turn_rate", "human")
"""The model-free rows (``navsim_eval.evaluation.pipeline.default_planners``)."""


def evaluate(runs: dict[str, Path], split: str, data_root: Path, out_dir: Path, eval_seed: int,
             omegas: list[float], ablations: bool, max_scenes: Optional[int] = None) -> list[dict]:
    """Per-(token, variant) result rows of every policy of one seed on one split (resumable CSV)."""
    import torch

    from navsim_eval.evaluation import ModelPlanner
    from navsim_eval.evaluation.pipeline import EvaluationConfig, build_sources, default_planners
    from navsim_eval.evaluation.runner import RunSettings, run_evaluation
    from navsim_eval.evaluation.scorers import NativeScorer
    from vla import DipoleVLA
    from vla.sampling import PolicySampler

    torch.set_num_threads(1)
    config = EvaluationConfig(split=split, data_root=str(data_root), two_stage="off", metrics=(METRIC_VERSION,),
                              max_scenes=max_scenes, baselines=MODEL_FREE_ROWS)
    common = dict(seeds=(eval_seed,), num_samples=SAMPLES_PER_SCENE)
    planners = default_planners(config)
    il = DipoleVLA.from_pretrained(str(runs["il"] / "il_model")).eval()
    planners.append(ModelPlanner(PolicySampler(il), name=IL_LABEL, mode="base", **common))
    sources = build_sources(config)
    if ablations:
        planners += [ModelPlanner(PolicySampler(il, AblatedProcessor(il.processor, a)), name=f"{IL_LABEL} {a}",
                                  mode="base", **common) for a in ABLATIONS if a != "cameras_shuffled"]
        planners.append(shuffled_cameras_planner(il, sources[0].loader, name=f"{IL_LABEL} cameras_shuffled",
                                                 mode="base", **common))
    for name, run_dir in runs.items():
        if name == "il":
            continue
        model = DipoleVLA.from_pretrained(str(run_dir / "model")).eval()
        if name.startswith("ewr"):  # one branch: pi+ is the guided sampler at omega = 0
            planners.append(ModelPlanner(PolicySampler(model), name=name, mode="guided", omegas=[0.0], **common))
        else:
            planners.append(ModelPlanner(PolicySampler(model), name=name, mode="guided", omegas=omegas, **common))
    out_dir.mkdir(parents=True, exist_ok=True)
    return run_evaluation(sources, planners, NativeScorer(), out_dir / "results.csv",
                          RunSettings(metrics=(METRIC_VERSION,), batch_size=16, show_progress=False))


def row_label(row: dict) -> str:
    omega = row.get("omega")
    if row["planner"].startswith("ewr"):  # always omega = 0
        return row["planner"]
    if omega is None or (isinstance(omega, float) and math.isnan(omega)):
        return row["planner"]
    return f"{row['planner']} omega={float(omega):g}"


def per_scene(rows: list[dict]) -> dict[str, dict[str, dict[str, float]]]:
    """{row label: {metric: {token: mean over samples}}} (failed rows are left out and counted); besides the
    table's metrics (percent) each plan's ``END_HEADING``."""
    acc: dict[str, dict[str, dict[str, list[float]]]] = {}
    for row in rows:
        if row["metric"] != METRIC_VERSION or int(row["stage"]) != 1 or row.get("error"):
            continue
        label = row_label(row)
        values = [(short, 100.0 * float(row[column])) for short, column in TABLE]
        if row.get("poses") is not None:
            values.append((END_HEADING, float(np.degrees(np.asarray(row["poses"], dtype=float)[-1, 2]))))
        for key, value in values:
            if np.isfinite(value):
                acc.setdefault(label, {}).setdefault(key, {}).setdefault(row["token"], []).append(value)
    return {label: {m: {t: float(np.mean(v)) for t, v in tokens.items()} for m, tokens in metrics.items()}
            for label, metrics in acc.items()}


def paired(a: dict[str, float], b: dict[str, float], tokens: Optional[set] = None) -> tuple[float, float, float, int]:
    """Mean of a - b over common scenes and its 95 % CI (normal approximation)."""
    common = sorted(set(a) & set(b) & (tokens if tokens is not None else set(a)))
    diff = np.array([a[t] - b[t] for t in common])
    if len(diff) < 2:
        return math.nan, math.nan, math.nan, len(diff)
    half = Z_95 * diff.std(ddof=1) / math.sqrt(len(diff))
    return float(diff.mean()), float(diff.mean() - half), float(diff.mean() + half), len(diff)


def average_seeds(tables: list[dict]) -> dict:
    """Per-scene values averaged over seeds (scenes present in every seed)."""
    out: dict = {}
    for label in set.intersection(*(set(t) for t in tables)):
        for metric in tables[0][label]:
            tokens = set.intersection(*(set(t[label][metric]) for t in tables))
            out.setdefault(label, {})[metric] = {tok: float(np.mean([t[label][metric][tok] for t in tables]))
                                                 for tok in tokens}
    return out


def fmt_ci(d: tuple) -> str:
    return "-" if not np.isfinite(d[0]) else f"{d[0]:+.1f} [{d[1]:+.1f}, {d[2]:+.1f}]"


def markdown(table: dict, order: list[str]) -> str:
    lines = ["| policy | " + " | ".join(m for m, _ in TABLE) + " | PDMS - IL [95% CI] | NC - IL | DAC - IL |",
             "|---|" + "---|" * (len(TABLE) + 3)]
    il = table[IL_LABEL]
    for label in order:
        if label not in table:
            continue
        entry = table[label]
        cells = [f"{np.mean(list(entry[m].values())):.1f}" if entry.get(m) else "-" for m, _ in TABLE]
        gains = [fmt_ci(paired(entry[m], il[m])) if label != IL_LABEL else "-" for m in ("PDMS", "NC", "DAC")]
        lines.append(f"| {label} | " + " | ".join(cells) + " | " + " | ".join(gains) + " |")
    return "\n".join(lines)


def mean_pdms(table: dict, label: str) -> float:
    return float(np.mean(list(table[label]["PDMS"].values())))


# ------------------------------------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("outputs/dipole_vs_il"))
    parser.add_argument("--ewr-betas", type=float, nargs="*", default=list(EWR_TEMPERATURES),
                        help="EWR temperatures; the one with the best validation PDMS is reported")
    parser.add_argument("--omegas", type=float, nargs="*", default=[0.0, 0.5, 1.0, 2.0, 4.0])
    parser.add_argument("--data-root", type=Path, default=Path("data/synthetic"),
                        help="the world every run trains on (generated there if missing) and is evaluated on")
    parser.add_argument("--select-split", default="synthetic_val",
                        help="held-out split (logs disjoint from training) on which omega and the EWR temperature "
                             "are chosen")
    parser.add_argument("--test-split", default="synthetic_test")
    parser.add_argument("--max-scenes", type=int, default=None, help="evaluate the first N scenes of each split")
    parser.add_argument("--train-only", action="store_true", help="train every run, evaluate nothing")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    if any(o.startswith("data.data_root=") for o in args.overrides):
        parser.error("give the world with --data-root: it is the one the runs train on and are evaluated on")
    # training runs in the repository root, so every path it gets is absolute
    args.out, args.data_root = args.out.resolve(), args.data_root.resolve()

    runs_of = {s: train_seed(args.out / f"seed{s}", s, args.data_root, args.ewr_betas, list(args.overrides))
               for s in args.seeds}
    if args.train_only:
        return
    val, test, report = {}, {}, {"per_seed": {}}
    for seed, runs in runs_of.items():
        root, eval_seed = args.out / f"seed{seed}", seed + EVAL_SEED_OFFSET
        val[seed] = per_scene(evaluate(runs, args.select_split, args.data_root, root / "eval_val", eval_seed,
                                       args.omegas, ablations=False, max_scenes=args.max_scenes))
        test[seed] = per_scene(evaluate(runs, args.test_split, args.data_root, root / "eval_test", eval_seed,
                                        args.omegas, ablations=True, max_scenes=args.max_scenes))

    val_mean = average_seeds(list(val.values()))
    dipole_labels = [f"dipole omega={w:g}" for w in args.omegas]
    control_labels = [f"control omega={w:g}" for w in args.omegas]
    ewr_labels = [f"ewr_beta{b:g}" for b in args.ewr_betas]
    best_dipole = max(dipole_labels, key=lambda k: mean_pdms(val_mean, k))
    best_control = max(control_labels, key=lambda k: mean_pdms(val_mean, k))
    best_ewr = max(ewr_labels, key=lambda k: mean_pdms(val_mean, k)) if ewr_labels else None
    same_omega_control = best_dipole.replace("dipole", "control")
    order = (list(MODEL_FREE_ROWS) + [IL_LABEL] + [f"{IL_LABEL} {a}" for a in ABLATIONS]
             + dipole_labels + control_labels + ewr_labels)
    out_lines = [f"Selection on {args.select_split} (mean PDMS over seeds {args.seeds}): "
                 + ", ".join(f"{k}: {mean_pdms(val_mean, k):.1f}" for k in dipole_labels + control_labels + ewr_labels)
                 + f"\n-> DIPOLE {best_dipole}, control {best_control}"
                 + (f", EWR {best_ewr}" if best_ewr else "")]

    def headline(table: dict, name: str) -> list[str]:
        turning = {t for t in table[IL_LABEL]["PDMS"] if t in turn_sign}
        lines = [f"\n### {name}: {args.test_split}, {SAMPLES_PER_SCENE} samples per scene, percent\n",
                 markdown(table, order), ""]
        pairs = ((best_dipole, IL_LABEL), (best_dipole, same_omega_control), (best_dipole, best_control),
                 (same_omega_control, IL_LABEL)) + (((best_ewr, IL_LABEL), (best_dipole, best_ewr)) if best_ewr else ())
        for label, ref in dict.fromkeys(pairs):  # distinct pairs, in order
            if label in table and ref in table:
                lines.append(f"- {label} - {ref}: PDMS {fmt_ci(paired(table[label]['PDMS'], table[ref]['PDMS']))}")
        ablated = f"{IL_LABEL} command_forward"
        if ablated in table and turning:
            lines.append(f"- {ablated} - {IL_LABEL} on the {len(turning)} scenes whose command turns: PDMS "
                         + fmt_ci(paired(table[ablated]["PDMS"], table[IL_LABEL]["PDMS"], turning))
                         + "; by the scene's command: " + gain_by_command(table, ablated, IL_LABEL, turn_sign))
            toward = {label: heading_toward_command(table[label].get(END_HEADING, {}), turn_sign)
                      for label in ("human", IL_LABEL, ablated) if label in table}
            lines.append(f"- final heading toward the command on those scenes, degrees: "
                         + ", ".join(f"{label} {value:+.1f}" for label, value in toward.items()))
        if turning and best_dipole in table:
            lines.append(f"- {best_dipole} - {IL_LABEL} by the scene's command: "
                         + gain_by_command(table, best_dipole, IL_LABEL, turn_sign))
            directions = split_by_direction(turn_sign).values()
            lines.append("- final heading toward the command on the scenes turning left / right, degrees: " + ", ".join(
                f"{label} " + " / ".join(f"{heading_toward_command(table[label].get(END_HEADING, {}), only):+.1f}"
                                         for only in directions)
                for label in ("human", IL_LABEL, ablated, best_dipole) if label in table))
        return lines

    val_order = list(MODEL_FREE_ROWS) + [IL_LABEL] + dipole_labels + control_labels + ewr_labels
    out_lines += [f"\n### validation: {args.select_split} (held-out logs), mean over seeds {args.seeds}, percent\n",
                  markdown(val_mean, val_order), ""]
    out_lines += [f"- {d} - {c}: PDMS {fmt_ci(paired(val_mean[d]['PDMS'], val_mean[c]['PDMS']))}"
                  for d, c in zip(dipole_labels, control_labels) if d in val_mean and c in val_mean]
    turn_sign = command_turn_signs(args.data_root, args.test_split)
    for seed in args.seeds:
        out_lines += headline(test[seed], f"seed {seed} (evaluation seed {seed + EVAL_SEED_OFFSET})")
        for name, run_dir in runs_of[seed].items():
            rounds = rollout_rounds(run_dir)
            if rounds:
                out_lines.append(f"- {name} training rollouts per round: " + "; ".join(
                    f"r{i} " + " ".join(f"{k.split('/')[-1]}={v:.3g}" for k, v in r.items())
                    for i, r in enumerate(rounds)))
                report["per_seed"].setdefault(str(seed), {})[f"{name}_rounds"] = rounds
    mean = average_seeds(list(test.values()))
    out_lines += headline(mean, f"mean over seeds {args.seeds} (per-scene values averaged over seeds first)")
    text = "\n".join(out_lines)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "summary.md").write_text(text + "\n")
    report.update({"selection": {"dipole": best_dipole, "control": best_control, "ewr": best_ewr},
                   "test_mean_pdms": {k: mean_pdms(mean, k) for k in mean},
                   "val_mean_pdms": {k: mean_pdms(val_mean, k) for k in val_mean}})
    (args.out / "summary.json").write_text(json.dumps(report, indent=2))


def command_turn_signs(data_root: Path, split: str) -> dict[str, int]:
    """{token: +1 (left) or -1 (right)} for the split's scenes whose current driving command turns."""
    from navsim_eval.evaluation.pipeline import EvaluationConfig, build_sources

    source = build_sources(EvaluationConfig(split=split, data_root=str(data_root), two_stage="off"))[0]
    commands = {t: source.agent_input(t).ego_statuses[-1].command for t in source.tokens}
    return {t: TURN_COMMAND_SIGNS[c] for t, c in commands.items() if c in TURN_COMMAND_SIGNS}


def split_by_direction(turn_sign: dict[str, int]) -> dict[str, dict[str, int]]:
    """The turning scenes by command: {"left": {token: sign}, "right": {token: sign}}."""
    return {name: {t: s for t, s in turn_sign.items() if s == sign} for name, sign in TURN_COMMAND_SIGNS.items()}


def gain_by_command(table: dict, label: str, ref: str, turn_sign: dict[str, int]) -> str:
    """``label`` - ``ref`` PDMS with its 95 % CI over the scenes of each command (turning left, no turn, turning
    right): where a gain comes from, e.g. from no longer following one of the commands."""
    scenes = set(table[label]["PDMS"]) & set(table[ref]["PDMS"])
    by_direction = split_by_direction(turn_sign)
    groups = {"left": scenes & set(by_direction["left"]), "no turn": scenes - set(turn_sign),
              "right": scenes & set(by_direction["right"])}
    return ", ".join(f"{name} ({len(tokens)} scenes) {fmt_ci(paired(table[label]['PDMS'], table[ref]['PDMS'], tokens))}"
                     for name, tokens in groups.items() if tokens)


def heading_toward_command(end_heading: dict[str, float], turn_sign: dict[str, int]) -> float:
    """Mean final heading of the plans towards their scene's command (degrees; 0 = straight on) over the turning
    scenes present in ``end_heading``: how much a policy turns where the command says to."""
    common = [t for t in turn_sign if t in end_heading]
    return float(np.mean([turn_sign[t] * end_heading[t] for t in common])) if common else math.nan


if __name__ == "__main__":
    main()
