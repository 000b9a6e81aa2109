"""The whole pipeline on the sample shipped in the package, in a few minutes on a CPU
(:func:`demo`, the ``rplacevit demo`` command): ingest, render, train two tiny models, let them
paint the real canvas, and evaluate them against simple rules on later events.

The models are the ``tiny`` preset with 16-pixel windows so that a laptop trains them in about a
minute; the command line's defaults (64-pixel windows, more steps) are for real runs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import SAMPLE_CSV, history, outputs, render, store
from .devices import DEFAULT_THREADS
from .times import format_time

#: The models the demo trains: 16-pixel windows, the tiny preset's width and depth, seeing the
#: inputs that won the ablation on the sample the demo paints (README "Can the canvas be
#: predicted?"): the colors and the pixels' ages, and for the time model their previous colors.
COLOR_MODEL = dict(window=16, centre=4, patch=4, inputs=("color", "age"))
TIME_MODEL = dict(window=16, centre=8, patch=4, inputs=("color", "age", "previous"))
COLOR_STEPS, TIME_STEPS = 1500, 600
PAINT_STEPS = 3000


def prepare(out: Path) -> None:
    """Creates and marks ``out``, or empties a folder a previous demo wrote; refuses any other
    folder that holds files (:mod:`rplacevit.outputs`), so the demo never deletes what it did not
    write."""
    if outputs.check(out, "demo", True, flag=""):
        for child in out.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    outputs.create(out, "demo", True, flag="")


def demo(out: str | os.PathLike[str] = "rplacevit-demo", device: str = "auto", progress: bool = True,
         say=print, threads: int = DEFAULT_THREADS) -> dict[str, Path]:
    """Runs the pipeline into folder ``out`` and returns what it wrote, name → path. ``say`` gets
    one line per stage (``print`` by default); ``threads``: torch's CPU threads."""
    import imageio.v3 as iio

    from .evaluate import evaluate
    from .forecast import ForecastConfig, forecast
    from .report import format_table
    from .devices import resolve_device
    from .files import atomic_path
    from .infer import InferConfig, infer
    from .models import read_checkpoint
    from .train import TrainConfig, train

    out = Path(out)
    resolve_device(device)  # an unusable device fails before the folder is touched
    prepare(out)
    written: dict[str, Path] = {}
    say(f"rplacevit demo: the shipped sample {SAMPLE_CSV.name} → {out}")

    dataset = out / "dataset"
    summary = store.ingest([SAMPLE_CSV], dataset, progress=progress)
    say(f"ingested {summary['events']:,} events of {summary['users']:,} users into {dataset}")
    written["dataset"] = dataset

    reader = history.open(dataset)
    region = reader.event_bounds()
    written["final"] = render.render(reader, reader.time_range[1], out / "final.png", region=region, scale=4)
    frames = render.timelapse(reader, out / "timelapse.mp4", every_ms=30 * 60_000, fps=8, gif=out / "timelapse.gif",
                              region=region, scale=2, progress=progress)
    written["timelapse"], written["timelapse_gif"] = out / "timelapse.mp4", out / "timelapse.gif"
    say(f"rendered region {','.join(map(str, region))}: the final canvas, and a {frames}-frame timelapse (one frame every 30 minutes)")

    models = {}
    for task, overrides, steps in (("color", COLOR_MODEL, COLOR_STEPS), ("time", TIME_MODEL, TIME_STEPS)):
        run = out / f"{task}-model"
        config = TrainConfig(task=task, dataset=str(dataset), out=str(run), preset="tiny", model=dict(overrides),
                             steps=steps, batch_size=64, lr=3e-3, warmup=100, val_every=250,
                             checkpoint_every=steps, region=region, device=device, threads=threads)
        train(config, progress=progress)
        models[task] = run / "model.pt"
        written[f"{task}_model"], written[f"{task}_loss"] = run / "model.pt", run / "loss.png"
        say(f"trained the {task} model ({steps} steps of 64 events): {run / 'model.pt'}")

    until = read_checkpoint(models["color"])["training"]["until"]
    painting = InferConfig(steps=PAINT_STEPS, dataset=dataset, at=until, region=region, batch_views=16, frame_every=25, fps=24,
                           scale=2, seed=0, device=device, threads=threads, video=out / "paint.mp4", gif=out / "paint.gif", png=out / "paint.png",
                           progress=progress)
    result = infer(models["color"], models["time"], painting)
    with atomic_path(out / "paint-start.png") as temporary:
        iio.imwrite(temporary, render.to_rgb(result.start, None, 2))
    written["paint_start"] = out / "paint-start.png"
    written["paint"], written["paint_gif"], written["paint_png"] = out / "paint.mp4", out / "paint.gif", out / "paint.png"
    changed = int((result.canvas != result.start).sum())
    say(f"painted {len(result.placements):,} pixels ({changed:,} changed) on the real canvas of {format_time(until)}, "
        f"where training ended, in {result.seconds:.1f} s, where the time model's map expects changes")

    forecasting = forecast(ForecastConfig(dataset=str(dataset), color_model=str(models["color"]), time_model=str(models["time"]),
                                          out=str(out / "forecast"), t0=until, region=region, max_steps=1, device=device,
                                          threads=threads, progress=False))
    shutil.copyfile(out / "forecast" / forecasting["pictures"][0], out / "forecast.png")
    written["forecast"] = out / "forecast.png"
    scored = forecasting["forecasters"]
    rules = [name for name in scored if name.startswith("recency")]
    best = max(rules, key=lambda name: scored[name]["f1"])
    say(f"forecast the 30 minutes after {format_time(until)} from the real canvas ({forecasting['per_step'][0]['events']:,} events): "
        f"the models' F1 {scored['model']['f1']:.3f} (the best rule, {best}: {scored[best]['f1']:.3f}; their painting loop of "
        f"before: {scored['seed-painter']['f1']:.3f}); deciding themselves which pixels change, a skill of "
        f"{scored['model-auto']['skill']:+.3f} over leaving the canvas as it is")

    report = evaluate(dataset, models["color"], models["time"], t0=until, device=device, out=out / "evaluation", progress=progress,
                      threads=threads)
    written["evaluation"] = out / "evaluation" / "report.md"
    say(f"evaluated both models on the {report['color']['n']:,} events after {format_time(until)}, against simple rules:")
    say(format_table(report).rstrip())

    say("wrote:")
    for name, path in written.items():
        say(f"  {name:<15} {path}")
    say("browse the sample through time, with what the models expect next (Ctrl-C stops the server):")
    say(f"  {view_command(dataset, models['color'], models['time'])}")
    return written


def view_command(dataset: Path, color_model: Path, time_model: Path) -> str:
    """The ``rplacevit view`` command line for a dataset and its models, quoted for a shell."""
    import shlex

    return shlex.join(["rplacevit", "view", str(dataset), "--color-model", str(color_model), "--time-model", str(time_model)])
