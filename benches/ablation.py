"""The ablation of issue 14: which inputs carry the signal? Trains a tiny color model and a tiny
time model for each set of inputs (same seed, same steps, same split), then scores them all in
one ``rplacevit evaluate`` on the later events, against the rules. Each command is printed as it
runs, with its wall time (the CPU budget), so any row can be redone by hand.

    python benches/ablation.py --data sample --out runs/ablation-sample
    python benches/ablation.py --data bench-data/synth_10000000_1 --out runs/ablation-synth \\
        --until 2022-04-04T06:00:00Z

``--data sample`` ingests the shipped sample first (into OUT/dataset) and trains on the region
that holds its events, with the default split (90% of the events); a run folder that already
holds a ``model.pt`` of the same model (inputs, head, objective) is kept, so an interrupted
ablation continues where it stopped (one from an older ablation is trained again).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import rplacevit
from rplacevit.models import ModelConfig, load_model

#: label → inputs; the time model also gets the best inputs with the bce objective.
ABLATION = {"color": "color", "+age": "color,age", "+previous": "color,previous", "+placer": "color,placer", "+users": "color,users",
            "+age+previous": "color,age,previous", "all": "color,age,previous,placer,users"}
SAMPLE_REGION = "250,375,378,503"


def same_model(kept: ModelConfig, wanted: ModelConfig, extra: list[str]) -> bool:
    """Whether a kept run's model is the one this ablation would train: its inputs, its time
    objective, and a color model's head (time models have no use for it)."""
    objective = extra[extra.index("--time-objective") + 1] if "--time-objective" in extra else wanted.time_objective
    head = kept.pixel_head == wanted.pixel_head or wanted.kind == "time"
    return head and (kept.inputs, kept.time_objective) == (wanted.inputs, objective)


def run(command: list[str], log) -> float:
    """Runs an rplacevit command, printing it first; its wall time in seconds."""
    line = " ".join(command)
    print(f"$ {line}", flush=True)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "rplacevit", *command], check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    print(f"  {seconds:.0f} s", flush=True)
    log.append({"command": "rplacevit " + line, "seconds": round(seconds, 1)})
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True, help="a dataset folder, or 'sample' for the shipped sample")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--until", help="train on events before TIME, evaluate from it (default: the 90%% split)")
    parser.add_argument("--region", help="x0,y0,x1,y1 to train and evaluate on (default: all; the sample's events for 'sample')")
    parser.add_argument("--color-steps", type=int, default=3000)
    parser.add_argument("--time-steps", type=int, default=1500)
    parser.add_argument("--samples", default="20000", help="evaluated events (default: %(default)s)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    log: list[dict] = []
    data, region = args.data, args.region
    if data == "sample":
        data, region = str(args.out / "dataset"), region or SAMPLE_REGION
        if not (args.out / "dataset").exists():
            run(["ingest", str(rplacevit.SAMPLE_CSV), "-o", data, "--quiet"], log)
    common = ["--window", "32", "--centre", "8", "--batch-size", "64", "--lr", "3e-3", "--warmup", "100", "--val-every", "500",
              "--seed", "0", "--device", "cpu", "--threads", "1"]
    if region:
        common += ["--region", region]
    if args.until:
        common += ["--until", args.until]
    runs = {"color": {}, "time": {}}
    retrained: list[str] = []
    plan = [("color", label, inputs, args.color_steps, []) for label, inputs in ABLATION.items()]
    plan += [("time", label, inputs, args.time_steps, []) for label, inputs in ABLATION.items()]
    plan.append(("time", "+age bce", "color,age", args.time_steps, ["--time-objective", "bce"]))
    for task, label, inputs, steps, extra in plan:
        folder = args.out / f"{task}-{label.replace('+', '-').replace(' ', '-').strip('-')}"
        runs[task][label] = folder / "model.pt"
        if (folder / "model.pt").exists():
            if same_model(load_model(folder / "model.pt").config, ModelConfig(kind=task, inputs=inputs), extra):
                print(f"kept {folder}")
                continue
            shutil.rmtree(folder)
            retrained.append(str(folder))
        run(["train", task, data, "-o", str(folder), "--steps", str(steps), "--inputs", inputs, *common, *extra], log)
    evaluation = ["evaluate", data, "--samples", args.samples, "--seed", "0", "--device", "cpu", "--threads", "1", "--force", "-o", str(args.out / "report")]
    for task in ("color", "time"):
        evaluation += [arg for label, path in runs[task].items() for arg in (f"--{task}-model", f"{label}={path}")]
    if region:
        evaluation += ["--region", region]
    run(evaluation, log)
    print((args.out / "report" / "report.md").read_text())
    # The commands of earlier calls stay for the models kept (each the command that trained it);
    # those of models trained again and of earlier evaluations go.
    record_path = args.out / "commands.json"
    earlier = json.loads(record_path.read_text())["runs"] if record_path.exists() else []
    earlier = [run for run in earlier if not run["command"].startswith("rplacevit evaluate")
               and not any(f" -o {folder} " in run["command"] for folder in retrained)]
    record = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "runs": earlier + log}
    record_path.write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
