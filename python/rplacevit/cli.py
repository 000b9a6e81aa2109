"""The ``rplacevit`` command: one subcommand per feature, each a thin shell over the Python API."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import ArgumentError, DatasetError, FormatError, history, render, store
from .signals import Terminated, stop_on_sigterm
from .times import format_time, parse_duration, parse_time


def print_dataset(summary: dict) -> None:
    print(f"  events             {summary['events']:,}")
    print(f"  users              {summary['users']:,}")
    print(f"  partitions         {summary['partitions']:,} (of up to {summary['partition_size']:,} events)")
    print(f"  first event        {format_time(summary['first_timestamp_ms'])}")
    print(f"  last event         {format_time(summary['last_timestamp_ms'])}")
    print(f"  canvas             {summary['canvas_width']}×{summary['canvas_height']}")
    print(f"  moderation events  {summary['moderation_events']:,}")
    print(f"  rows read          {summary['rows']:,} ({summary['rejected_rows']:,} rejected)")


def print_ingest(summary: dict) -> None:
    seconds = sum(summary["phase_seconds"].values())
    rate = summary["rows"] / seconds if seconds > 0 else float("inf")
    print(f"ingested {len(summary['sources'])} file(s) into {summary['path']}")
    print_dataset(summary)
    phases = ", ".join(f"{name} {s:.2f} s" for name, s in summary["phase_seconds"].items())
    print(f"  took               {seconds:.2f} s, {rate:,.0f} rows/s ({phases})")
    if summary["rejected_rows"]:
        print(f"  rejected rows are listed in {Path(summary['path']) / 'rejects.csv'}")


def cmd_ingest(args: argparse.Namespace) -> None:
    summary = store.ingest(
        args.inputs,
        args.output,
        partition_size=args.partition_size,
        on_error=args.on_error,
        force=args.force,
        progress=not args.quiet and sys.stderr.isatty(),
        max_rectangle_pixels=args.max_rectangle_pixels,
    )
    if not args.quiet:
        print_ingest(summary)


def cmd_verify(args: argparse.Namespace) -> int:
    problems = store.verify(args.dataset, progress=not args.quiet and sys.stderr.isatty())
    for problem in problems:
        print(f"rplacevit: damaged: {problem}", file=sys.stderr)
    if problems:
        print(f"{args.dataset}: {len(problems)} problem(s) found; ingest the dataset again", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{args.dataset}: every file matches its checksums, and the files agree with each other")
    return 0


INFO_KEYS = [
    "events",
    "users",
    "partitions",
    "first_timestamp_ms",
    "last_timestamp_ms",
    "canvas_width",
    "canvas_height",
    "moderation_events",
    "rejected_rows",
]


def cmd_info(args: argparse.Namespace) -> None:
    summary = store.info(args.dataset)
    if args.json:
        print(json.dumps({key: summary[key] for key in INFO_KEYS}, indent=2))
    else:
        print(f"dataset {args.dataset}")
        print_dataset(summary)


def cmd_synth(args: argparse.Namespace) -> None:
    summary = store.synth(args.output, args.events, seed=args.seed, progress=not args.quiet and sys.stderr.isatty())
    if not args.quiet:
        print(
            f"wrote {summary['rows']:,} rows ({summary['events']:,} events, {summary['users']:,} users, "
            f"{summary['moderation_rows']:,} moderation rectangles) to {args.output}, "
            f"{format_time(summary['first_timestamp_ms'])} → {format_time(summary['last_timestamp_ms'])}"
        )


def cmd_render(args: argparse.Namespace) -> None:
    reader = history.open(args.dataset)
    t_ms = parse_time(args.at)
    render.render(reader, t_ms, args.output, region=render.parse_region(args.region), scale=args.scale)
    print(f"wrote {args.output}: the canvas at {format_time(t_ms)}")


def cmd_timelapse(args: argparse.Namespace) -> None:
    reader = history.open(args.dataset)
    frames = render.timelapse(
        reader,
        args.output,
        every_ms=parse_duration(args.every),
        fps=args.fps,
        gif=args.gif,
        region=render.parse_region(args.region),
        scale=args.scale,
        progress=sys.stderr.isatty(),
    )
    also = f" and {args.gif}" if args.gif else ""
    print(f"wrote {args.output}{also}: {frames} frames, one every {args.every}, at {args.fps} fps")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    config = TrainConfig(
        task=args.task,
        data=args.data,
        out=args.output,
        preset=args.preset,
        steps=args.steps,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        region=render.parse_region(args.region),
        until=None if args.until is None else parse_time(args.until),
        val_from=None if args.val_from is None else parse_time(args.val_from),
        val_every=args.val_every,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        amp=args.amp,
        compile=args.compile,
        seed=args.seed,
        target=args.target,
        num_workers=args.num_workers,
        model={name: getattr(args, name) for name in ("window", "centre", "patch") if getattr(args, name) is not None},
    )
    train(config, resume=args.resume, progress=sys.stderr.isatty())
    print(f"trained {args.task} model: {Path(args.output) / 'model.pt'}, metrics in {Path(args.output) / 'metrics.csv'}")


def cmd_infer(args: argparse.Namespace) -> None:
    from .infer import infer, parse_color_weights

    if args.time_model is None and not args.random_pixel:
        raise ArgumentError("give --time-model CKPT, or --random-pixel to pick pixels at random")
    result = infer(
        args.color_model,
        None if args.random_pixel else args.time_model,
        steps=args.steps,
        init=args.init,
        data=args.data,
        at=args.at,
        canvas_size=None if args.canvas_size is None else tuple(args.canvas_size),
        region=render.parse_region(args.region),
        batch_views=args.batch_views,
        time_noise=args.time_noise,
        temperature=args.temperature,
        color_weights=None if args.color_weights is None else parse_color_weights(args.color_weights),
        avoid_current=args.avoid_current,
        seed=args.seed,
        device=args.device,
        video=args.output,
        gif=args.gif,
        png=args.png,
        frame_every=args.frame_every,
        fps=args.fps,
        scale=args.scale,
        progress=sys.stderr.isatty(),
    )
    rate = len(result.placements) / result.seconds if result.seconds > 0 else float("inf")
    also = "".join(f", {path}" for path in (args.gif, args.png) if path)
    print(f"placed {len(result.placements):,} pixels ({rate:,.0f}/s, {result.frames} frames) → {args.output}{also}")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import demo

    demo(args.output, device=args.device, progress=sys.stderr.isatty())


def parse_samples(text: str) -> int | None:
    """``--samples``: a positive integer, or ``all``."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive integer or 'all'")
    return value


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate, format_table

    report = evaluate(
        args.data,
        args.color_model,
        args.time_model,
        t_from=args.t_from,
        t_to=args.t_to,
        region=render.parse_region(args.region),
        samples=args.samples,
        seed=args.seed,
        batch_size=args.batch_size,
        device=args.device,
        out=args.output,
        allow_overlap=args.allow_overlap,
        force=args.force,
        progress=sys.stderr.isatty(),
    )
    print(format_table(report), end="")
    print(f"wrote the report to {args.output} (report.json, report.md, events.npy, confusion.png, examples.png)")


def integer_at_least(minimum: int):
    """An argparse type: an integer ≥ ``minimum``, else a usage error naming the argument."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {minimum}")
        return value

    parse.__name__ = "integer"
    return parse


positive, natural = integer_at_least(1), integer_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rplacevit",
        description="The r/place canvas history as a fast, exact dataset, and Vision Transformers that paint it.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run the whole pipeline on the sample shipped in the package")
    demo.add_argument("-o", "--output", default="rplacevit-demo", help="output folder (default: %(default)s)")
    demo.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="(default: %(default)s: cuda when there is one)")
    demo.set_defaults(run=cmd_demo)

    synth = sub.add_parser("synth", help="write a realistic synthetic history in the official 2022 CSV format")
    synth.add_argument("-o", "--output", required=True, help="output file (.csv, or .csv.gz for gzip)")
    synth.add_argument("--events", type=positive, required=True, help="number of data rows to write")
    synth.add_argument("--seed", type=natural, default=0, help="random seed (default: %(default)s)")
    synth.add_argument("--quiet", action="store_true", help="print nothing but errors")
    synth.set_defaults(run=cmd_synth)

    ingest = sub.add_parser("ingest", help="ingest official r/place CSV files into a dataset folder")
    ingest.add_argument("inputs", nargs="+", metavar="INPUT", help=".csv, .csv.gz or .gzip files (single file or numbered parts)")
    ingest.add_argument("-o", "--output", required=True, metavar="DATASET", help="dataset folder to create")
    ingest.add_argument("--partition-size", type=positive, default=1_000_000, metavar="N", help="events per SQLite partition (default: %(default)s)")
    ingest.add_argument("--on-error", choices=["fail", "skip"], default="fail", help="stop at the first bad row, or skip bad rows into DATASET/rejects.csv (default: %(default)s)")
    ingest.add_argument("--force", action="store_true", help="replace an existing dataset")
    ingest.add_argument("--max-rectangle-pixels", type=natural, default=store.MAX_RECTANGLE_PIXELS, metavar="N",
                        help="the most pixels the moderation rectangles of all inputs may cover together (default: %(default)s)")
    ingest.add_argument("--quiet", action="store_true", help="print nothing but errors")
    ingest.set_defaults(run=cmd_ingest)

    verify = sub.add_parser("verify", help="check every byte of a dataset against its checksums, and its files against each other")
    verify.add_argument("dataset", metavar="DATASET")
    verify.add_argument("--quiet", action="store_true", help="print nothing but problems")
    verify.set_defaults(run=cmd_verify)

    render_cmd = sub.add_parser("render", help="render the canvas at a moment as a PNG")
    render_cmd.add_argument("dataset", metavar="DATASET")
    render_cmd.add_argument("--at", required=True, metavar="TIME", help="ISO 8601 (2022-04-03T12:00:00Z) or integer milliseconds")
    render_cmd.add_argument("-o", "--output", required=True, help="PNG file")
    render_cmd.add_argument("--region", metavar="x0,y0,x1,y1", help="crop (x1, y1 exclusive)")
    render_cmd.add_argument("--scale", type=positive, default=1, metavar="K", help="enlarge each pixel K times")
    render_cmd.set_defaults(run=cmd_render)

    timelapse = sub.add_parser("timelapse", help="render a video of the canvas through time")
    timelapse.add_argument("dataset", metavar="DATASET")
    timelapse.add_argument("-o", "--output", required=True, help="mp4 file (H.264)")
    timelapse.add_argument("--gif", metavar="GIF", help="also write a gif")
    timelapse.add_argument("--every", default="30m", help="time between frames: 30m, 1h, 90s… (default: %(default)s)")
    timelapse.add_argument("--fps", type=positive, default=30, help="frames per second (default: %(default)s)")
    timelapse.add_argument("--region", metavar="x0,y0,x1,y1", help="crop (x1, y1 exclusive)")
    timelapse.add_argument("--scale", type=positive, default=1, metavar="K", help="enlarge each pixel K times")
    timelapse.set_defaults(run=cmd_timelapse)

    train = sub.add_parser("train", help="train a color or time model (torchrun for several GPUs)")
    train.add_argument("task", choices=["color", "time"], help="which model to train")
    train.add_argument("--data", required=True, metavar="DATASET")
    train.add_argument("-o", "--output", required=True, metavar="RUN_DIR")
    train.add_argument("--preset", choices=["tiny", "small", "base"], default="tiny", help="model size (default: %(default)s)")
    length = train.add_mutually_exclusive_group(required=True)
    length.add_argument("--steps", type=positive, help="optimizer steps")
    length.add_argument("--epochs", type=float, help="passes over the training events")
    train.add_argument("--window", type=positive, metavar="N", help="side of the model's view in pixels (default: the preset's, 64)")
    train.add_argument("--centre", type=positive, metavar="N", help="side of the central square of pixel tokens (default: 16)")
    train.add_argument("--patch", type=positive, metavar="N", help="side of a periphery patch (default: 4)")
    train.add_argument("--batch-size", type=positive, default=64, help="events per step and process (default: %(default)s)")
    train.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default: %(default)s)")
    train.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay (default: %(default)s)")
    train.add_argument("--warmup", type=natural, default=100, help="warmup steps before the cosine decay (default: %(default)s)")
    train.add_argument("--region", metavar="x0,y0,x1,y1", help="train and validate on this region only")
    train.add_argument("--until", metavar="TIME", help="train on events before TIME (default: at 90%% of the events)")
    train.add_argument("--val-from", metavar="TIME", help="validate on events from TIME (default: --until)")
    train.add_argument("--val-every", type=positive, default=200, metavar="N", help="validate every N steps (default: %(default)s)")
    train.add_argument("--checkpoint-every", type=positive, default=1000, metavar="N", help="checkpoint every N steps (default: %(default)s)")
    train.add_argument("--target", choices=["placed", "next_minute_majority"], default="placed", help="color target (default: %(default)s)")
    train.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="(default: %(default)s: cuda when there is one)")
    train.add_argument("--amp", action="store_true", help="bf16 autocast on CUDA")
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument("--num-workers", type=natural, default=0, help="loader worker processes (default: %(default)s: batches come from Rust)")
    train.add_argument("--seed", type=natural, default=0)
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint of RUN_DIR")
    train.set_defaults(run=cmd_train)

    infer = sub.add_parser("infer", help="let the models paint a canvas; write mp4, gif and png")
    infer.add_argument("--color-model", required=True, metavar="CKPT")
    picker = infer.add_mutually_exclusive_group()
    picker.add_argument("--time-model", metavar="CKPT", help="picks the pixel that should change soonest")
    picker.add_argument("--random-pixel", action="store_true", help="pick pixels at random instead")
    start = infer.add_mutually_exclusive_group()
    start.add_argument("--init", metavar="IMAGE", help="start from an image (mapped to the nearest palette colors)")
    start.add_argument("--data", metavar="DATASET", help="start from the real canvas of a dataset (with --at)")
    infer.add_argument("--at", metavar="TIME", help="with --data: ISO 8601 or integer milliseconds")
    infer.add_argument("--region", metavar="x0,y0,x1,y1", help="paint on this part of the image or dataset canvas (x1, y1 exclusive)")
    infer.add_argument("--canvas-size", type=positive, nargs=2, metavar=("W", "H"), help="default 256 256 for a white start")
    infer.add_argument("--steps", type=natural, required=True, help="pixels to place")
    infer.add_argument("-o", "--output", required=True, help="mp4 file")
    infer.add_argument("--gif", help="also write a gif")
    infer.add_argument("--png", help="write the final canvas as PNG")
    infer.add_argument("--frame-every", type=positive, default=100, metavar="K", help="a frame every K placements (default: %(default)s)")
    infer.add_argument("--fps", type=positive, default=30)
    infer.add_argument("--scale", type=positive, default=1, metavar="K", help="enlarge each pixel K times")
    infer.add_argument("--temperature", type=float, default=0.0, help="0: argmax; else sample softmax(logits / T)")
    infer.add_argument("--time-noise", type=float, default=0.1, help="uniform noise added to the time grid (default: %(default)s)")
    infer.add_argument("--color-weights", metavar="27=0.75,...", help="multiply color probabilities (0 excludes a color)")
    infer.add_argument("--avoid-current", action="store_true", help="never place a pixel's present color")
    infer.add_argument("--batch-views", type=positive, default=1, metavar="B", help="non-overlapping views per forward pass")
    infer.add_argument("--seed", type=natural, default=0)
    infer.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    infer.set_defaults(run=cmd_infer)

    evaluate = sub.add_parser("evaluate", help="score the models against simple baselines on later events")
    evaluate.add_argument("--data", required=True, metavar="DATASET")
    evaluate.add_argument("--color-model", required=True, metavar="CKPT")
    evaluate.add_argument("--time-model", metavar="CKPT", help="also score a time model")
    evaluate.add_argument("--from", dest="t_from", metavar="TIME",
                          help="first timestamp evaluated (ISO 8601 or ms; default: where the models' training data ends)")
    evaluate.add_argument("--to", dest="t_to", metavar="TIME", help="evaluate events before TIME (default: to the end)")
    evaluate.add_argument("--region", metavar="x0,y0,x1,y1", help="only events in this region (x1, y1 exclusive)")
    evaluate.add_argument("--samples", type=parse_samples, default=20_000, metavar="N", help="a uniform sample of N events, or 'all' (default: %(default)s)")
    evaluate.add_argument("--seed", type=natural, default=0, help="seed of the sample (default: %(default)s)")
    evaluate.add_argument("--batch-size", type=positive, default=256, help="events per forward pass (default: %(default)s)")
    evaluate.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    evaluate.add_argument("--allow-overlap", action="store_true", help="allow --from before the end of a model's training data")
    evaluate.add_argument("--force", action="store_true", help="replace an existing report folder")
    evaluate.add_argument("-o", "--output", required=True, metavar="REPORT_DIR")
    evaluate.set_defaults(run=cmd_evaluate)

    info = sub.add_parser("info", help="summarise a dataset folder")
    info.add_argument("dataset", metavar="DATASET")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(run=cmd_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Exit status: 0 done, 1 a runtime error (bad data, a damaged file, no
    disk space), 2 a usage error (a bad argument), 130 interrupted (Ctrl-C), 143 terminated
    (SIGTERM); an error is one line on stderr."""
    parser = build_parser()
    args = parser.parse_args(argv)
    stop_on_sigterm()
    try:
        return args.run(args) or 0
    except Terminated:
        print("rplacevit: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("rplacevit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout left (`rplacevit info d | head -1`): stop quietly, as Unix tools
        # do, and keep Python from complaining again when it flushes stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except ArgumentError as error:
        print(f"rplacevit {args.command}: error: {error}", file=sys.stderr)
        return 2
    except MemoryError as error:
        print(f"rplacevit: error: out of memory{f': {error}' if str(error) else ''}", file=sys.stderr)
        return 1
    except (FormatError, DatasetError, OSError, ValueError, OverflowError) as error:
        print(f"rplacevit: error: {error}", file=sys.stderr)
        return 1
