"""The ``rplacevit`` command: one subcommand per feature, each a thin shell over the Python API.

The options of ``train`` and ``infer`` are derived from :class:`rplacevit.train.TrainConfig` and
:class:`rplacevit.infer.InferConfig` (see :mod:`rplacevit.options`); the library's messages
name arguments in backquotes, which :func:`main` turns into this command's flags. Only the
chosen command's options are built, so that ``info`` does not wait for torch to import.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from . import SAMPLE_CSV, ArgumentError, DatasetError, FormatError, __version__, history, render, store
from .devices import DEFAULT_THREADS, DEVICES
from .options import add_options, argument_type, as_flags, flags_of, from_options, parse_region
from .progress import LINE_INTERVAL_S
from .signals import Terminated, stop_on_sigterm
from .times import format_time, parse_duration, parse_time

#: Where a dataset folder comes as the first argument (``rplacevit COMMAND DATASET``).
DATASET_HELP = "a dataset folder written by rplacevit ingest"

#: What every command's --help ends with: the forms shared by all commands.
EPILOG = ("TIME is ISO 8601, e.g. 2022-04-03T12:00:00Z (UTC when no zone is given), or integer milliseconds since the Unix epoch. "
          "Missing folders of an output path are created.")


def print_dataset(summary: dict) -> None:
    print(f"  events             {summary['events']:,}")
    print(f"  users              {summary['users']:,}")
    print(f"  partitions         {summary['partitions']:,} (of up to {summary['partition_size']:,} events)")
    print(f"  first event        {format_time(summary['first_timestamp_ms'])}")
    print(f"  last event         {format_time(summary['last_timestamp_ms'])}")
    origin_x, origin_y = summary["canvas_origin"]
    origin = f" (official coordinates from {origin_x}, {origin_y})" if (origin_x, origin_y) != (0, 0) else ""
    print(f"  year               {summary['year']}")
    print(f"  canvas             {summary['canvas_width']}×{summary['canvas_height']}{origin}")
    print(f"  moderation events  {summary['moderation_events']:,}")
    dropped = f", {summary['duplicates_dropped']:,} exact duplicates dropped" if summary["duplicates_dropped"] else ""
    print(f"  rows read          {summary['rows']:,} ({summary['rejected_rows']:,} rejected{dropped})")


def print_ingest(summary: dict) -> None:
    seconds = sum(summary["phase_seconds"].values())
    rate = summary["rows"] / seconds if seconds > 0 else float("inf")
    print(f"ingested {len(summary['sources'])} file(s) into {summary['path']}")
    print_dataset(summary)
    phases = ", ".join(f"{name} {s:.2f} s" for name, s in summary["phase_seconds"].items())
    print(f"  took               {seconds:.2f} s, {rate:,.0f} rows/s ({phases})")
    if summary["rejected_rows"]:
        print(f"  rejected rows are listed in {Path(summary['path']) / 'rejects.csv'}")


def progress_wanted(args: argparse.Namespace) -> bool:
    """Progress on stderr unless ``--quiet`` (see :mod:`rplacevit.progress`)."""
    return not getattr(args, "quiet", False)


def cmd_ingest(args: argparse.Namespace) -> None:
    if bool(args.inputs) == args.sample:
        raise ArgumentError("give the INPUT files, or --sample for the sample shipped in the package")
    inputs = [SAMPLE_CSV] if args.sample else args.inputs
    summary = store.ingest(inputs, args.out, partition_size=args.partition_size, on_error=args.on_error, force=args.force,
                           progress=progress_wanted(args), max_rectangle_pixels=args.max_rectangle_pixels, year=args.year,
                           dedupe=args.dedupe)
    if not args.quiet:
        print_ingest(summary)


def cmd_download(args: argparse.Namespace) -> None:
    from .download import download

    summary = download(args.out, year=args.year, parts=args.parts, combined=args.combined, jobs=args.jobs, base_url=args.base_url,
                       url_list=args.url_list, retries=args.retries, verify=args.verify, progress=progress_wanted(args))
    states = list(summary["files"].values())
    counts = ", ".join(f"{states.count(state)} {state}" for state in ("downloaded", "complete", "checked") if state in states)
    rate = summary["bytes"] / summary["seconds"] / 2**20 if summary["seconds"] > 0 else 0
    print(f"{len(states)} file(s) in {summary['folder']}: {counts}; fetched {summary['bytes']:,} bytes in {summary['seconds']:.1f} s "
          f"({rate:,.1f} MiB/s)")


def cmd_get(args: argparse.Namespace) -> int:
    from .download import get

    summary = get(args.out, files=args.files, progress=progress_wanted(args), force=args.force, year=args.year, parts=args.parts,
                  combined=args.combined, jobs=args.jobs, base_url=args.base_url, url_list=args.url_list, retries=args.retries,
                  verify=args.verify)
    for problem in summary["problems"]:
        print(f"rplacevit: damaged: {problem}", file=sys.stderr)
    if summary["problems"]:
        return 1
    if not args.quiet:
        fetched = summary["download"]
        print(f"downloaded {fetched['bytes']:,} bytes into {fetched['folder']} ({len(fetched['files'])} file(s))")
        if summary["ingest"] is None:
            print(f"kept {args.out}: it is the dataset of these files")
        else:
            print_ingest(summary["ingest"])
        print(f"{args.out}: every file matches its checksums, and the files agree with each other")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    problems = store.verify(args.dataset, progress=progress_wanted(args))
    for problem in problems:
        print(f"rplacevit: damaged: {problem}", file=sys.stderr)
    if problems:
        print(f"{args.dataset}: {len(problems)} problem(s) found; ingest the dataset again", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"{args.dataset}: every file matches its checksums, and the files agree with each other")
    return 0


def cmd_export(args: argparse.Namespace) -> None:
    from .export import export

    summary = export(args.dataset, args.out, region=args.region, t0=args.t0, t1=args.t1, progress=progress_wanted(args))
    if not args.quiet:
        print(f"wrote {summary['path']}: {summary['events']:,} events in {summary['row_groups']} row group(s), "
              f"{summary['seconds']:.1f} s")


INFO_KEYS = ["events", "users", "partitions", "first_timestamp_ms", "last_timestamp_ms", "canvas_width", "canvas_height",
             "moderation_events", "rejected_rows"]


def cmd_info(args: argparse.Namespace) -> None:
    summary = store.info(args.dataset)
    reader = history.open(args.dataset)
    bounds = reader.event_bounds()
    if args.json:
        hours = [{"hour": format_time(hour), "events": n} for hour, n in reader.events_per_hour()]
        print(json.dumps({**{key: summary[key] for key in INFO_KEYS}, "event_bounds": bounds, "events_per_hour": hours}, indent=2))
    else:
        print(f"dataset {args.dataset}")
        print_dataset(summary)
        print(f"  events in          x {bounds[0]}..{bounds[2] - 1}, y {bounds[1]}..{bounds[3] - 1} "
              f"(--region {','.join(map(str, bounds))}; the default of render and timelapse)")


def cmd_synth(args: argparse.Namespace) -> None:
    summary = store.synth(args.out, args.rows, seed=args.seed, progress=progress_wanted(args), year=args.year)
    if not args.quiet:
        print(
            f"wrote {summary['rows']:,} rows ({summary['events']:,} events, {summary['users']:,} users, "
            f"{summary['moderation_rows']:,} moderation rows) to {args.out}, "
            f"{format_time(summary['first_timestamp_ms'])} → {format_time(summary['last_timestamp_ms'])}"
        )


def picture_region(reader: history.History, region: tuple[int, int, int, int] | str | None) -> tuple[int, int, int, int]:
    """What render and timelapse draw: ``--region``, the whole canvas for ``all``, and by default
    the bounding box of the events (a crop or a small dataset is not lost in white)."""
    if region == "all":
        return 0, 0, reader.canvas_width, reader.canvas_height
    return region or reader.event_bounds()


def cmd_render(args: argparse.Namespace) -> None:
    reader = history.open(args.dataset)
    region = picture_region(reader, args.region)
    render.render(reader, args.at, args.out, region=region, scale=args.scale)
    empty = " (before the first event: the canvas is still empty)" if args.at < reader.time_range[0] else ""
    print(f"wrote {args.out}: region {','.join(map(str, region))} at {format_time(args.at)}{empty}")


def cmd_timelapse(args: argparse.Namespace) -> None:
    reader = history.open(args.dataset)
    region = picture_region(reader, args.region)
    frames = render.timelapse(reader, args.out, every_ms=args.every, fps=args.fps, gif=args.gif, region=region, scale=args.scale,
                              clock=args.clock, progress=progress_wanted(args))
    also = f" and {args.gif}" if args.gif else ""
    print(f"wrote {args.out}{also}: region {','.join(map(str, region))}, {frames} frames, one every {args.every:,} ms, at {args.fps} fps")


def cmd_train(args: argparse.Namespace) -> None:
    from .train import TrainConfig, train

    overrides = {name: getattr(args, name) for name in MODEL_OPTIONS if getattr(args, name) is not None}
    config = from_options(args, TrainConfig, model=overrides)
    train(config, resume=args.resume, progress=progress_wanted(args))
    print(f"trained {config.task} model: {Path(config.out) / 'model.pt'}, metrics in {Path(config.out) / 'metrics.csv'}")


def cmd_infer(args: argparse.Namespace) -> None:
    from .infer import InferConfig, infer

    if args.time_model is None and not args.random_pixel:
        raise ArgumentError("give --time-model CKPT, or --random-pixel to pick pixels at random")
    if args.video is None and args.gif is None and args.png is None:
        raise ArgumentError("give at least one output: -o MP4, --gif GIF or --png PNG")
    config = from_options(args, InferConfig, progress=progress_wanted(args))
    result = infer(args.color_model, None if args.random_pixel else args.time_model, config)
    rate = len(result.placements) / result.seconds if result.seconds > 0 else float("inf")
    outputs = ", ".join(str(path) for path in (config.video, config.gif, config.png) if path)
    print(f"placed {len(result.placements):,} pixels ({rate:,.0f}/s, {result.frames} frames) → {outputs}")


def cmd_forecast(args: argparse.Namespace) -> None:
    from .forecast import ForecastConfig, forecast, markdown

    report = forecast(from_options(args, ForecastConfig, progress=progress_wanted(args)))
    if not args.quiet:
        print(markdown(report).split("\n\n| step start")[0].rstrip())
        print(f"wrote the forecast to {args.out} (report.json, report.md, {', '.join(report['pictures'])})")


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import demo

    demo(args.out, device=args.device, progress=progress_wanted(args), threads=args.threads)


def cmd_users(args: argparse.Namespace) -> None:
    import numpy as np

    from . import users

    reader = history.open(args.dataset)
    columns = users.features(reader, args.until)
    count = np.asarray(columns["count"])
    active = count > 0
    gaps = np.asarray(columns["median_gap_ms"])[active]
    gaps = gaps[~np.isnan(gaps)]
    top = np.argsort(-count, kind="stable")[:10]
    summary = {
        "dataset": str(args.dataset),
        "until": None if args.until is None else format_time(args.until),
        "users": int(active.sum()),
        "events": int(count.sum()),
        "count_percentiles": {str(p): float(np.percentile(count[active], p)) for p in (50, 90, 99)} if active.any() else {},
        "median_gap_s_percentiles": {str(p): float(np.percentile(gaps, p)) / 1000 for p in (10, 50, 90)} if len(gaps) else {},
        "top": [{"user": int(u), "hash": reader.user_hash(int(u)), "count": int(count[u]),
                 "median_gap_s": float(columns["median_gap_ms"][u]) / 1000} for u in top if count[u] > 0],
        "features": str(users.cache_folder(reader, args.until)),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"{summary['users']:,} users placed {summary['events']:,} pixels" + (f" before {summary['until']}" if args.until else ""))
    for name, label in (("count_percentiles", "placements per user"), ("median_gap_s_percentiles", "median gap (s)")):
        print(f"  {label:<22} " + ", ".join(f"p{p} {v:,.1f}" for p, v in summary[name].items()))
    print("  most active:")
    for row in summary["top"]:
        print(f"    {row['user']:>9}  {row['count']:>7,} placements, median gap {row['median_gap_s']:,.1f} s  {row['hash']}")
    print(f"  features of every user: {summary['features']} (rplacevit.users.features)")


def cmd_users_cluster(args: argparse.Namespace) -> None:
    from . import users

    written = users.cluster(history.open(args.dataset), args.out, clusters=args.clusters, until=args.until, seed=args.seed,
                            sample=args.sample, vectors=args.vectors, progress=progress_wanted(args), force=args.force)
    if not args.quiet:
        print(f"wrote {', '.join(str(p) for p in written.values())}")


def cmd_user(args: argparse.Namespace) -> None:
    from . import users

    reader = history.open(args.dataset)
    table = users.placements(reader, args.user)
    user = users.resolve_user(reader, args.user)
    print(f"user {user} ({reader.user_hash(user)}): {len(table['id']):,} placements")
    print(f"  {'event':>10}  {'time':<24}  {'x':>4}  {'y':>4}  color        survived 5 min")
    for k in range(len(table["id"])):
        color = int(table["color"][k])
        print(f"  {table['id'][k]:>10}  {format_time(int(table['timestamp'][k])):<24}  {table['x'][k]:>4}  {table['y'][k]:>4}  "
              f"{color:>2} {reader.palette[color]}  {'yes' if table['survived'][k] else 'no'}")
    if args.png:
        users.picture(reader, user, args.png)
        print(f"wrote {args.png}")


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


def labelled_models(given: list[str] | None) -> dict[str, str] | None:
    """The repeated ``--color-model`` or ``--time-model``: ``NAME=PATH`` or ``PATH`` (labelled by
    its run folder, see :func:`rplacevit.evaluate.labelled`) → label → path."""
    from .evaluate import labelled

    if not given:
        return None
    named, plain = {}, []
    for text in given:
        label, equals, path = text.partition("=")
        if equals and label and os.sep not in label and not os.path.exists(text):
            if label in named:
                raise ArgumentError(f"two models are labelled {label!r}: give each its own NAME=PATH")
            named[label] = path
        else:
            plain.append(text)
    found = labelled(plain)
    clash = sorted(found.keys() & named.keys())
    if clash:
        raise ArgumentError(f"two models are labelled {clash[0]!r}: give each its own NAME=PATH")
    return {**named, **found}


def cmd_view(args: argparse.Namespace) -> None:
    from .view import view

    view(args.dataset, port=args.port, host=args.host, color_model=args.color_model, time_model=args.time_model,
         open_browser=args.open, device=args.device, threads=args.threads, allow_other_palette=args.allow_other_palette)


def cmd_evaluate(args: argparse.Namespace) -> None:
    from .evaluate import evaluate
    from .report import format_table

    report = evaluate(args.dataset, labelled_models(args.color_model), labelled_models(args.time_model), t0=args.t0, t1=args.t1, region=args.region, samples=args.samples,
                      seed=args.seed, batch_size=args.batch_size, device=args.device, out=args.out, allow_overlap=args.allow_overlap,
                      allow_other_palette=args.allow_other_palette, force=args.force, progress=progress_wanted(args), threads=args.threads)
    print(format_table(report), end="")
    print(f"wrote the report to {args.out} (report.json, report.md, events.npy, confusion.png, examples.png)")


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


def parse_inputs(text: str) -> tuple[str, ...]:
    """``--inputs``: comma-separated names of :data:`rplacevit.models.INPUTS`, color among them."""
    from .models import INPUTS

    names = tuple(filter(None, (name.strip() for name in text.split(","))))
    if "color" not in names or any(name not in INPUTS for name in names):
        raise argparse.ArgumentTypeError(f"{text!r}: expected color and any of {', '.join(INPUTS[1:])}, comma-separated")
    return names


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number from 0 to 1")
    return value


def yes_no(text: str) -> bool:
    """``--pixel-head``-like flags: yes or no."""
    if text not in ("yes", "no"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected yes or no")
    return text == "yes"


#: The model settings ``train`` takes besides the preset, as ``--NAME`` (ModelConfig fields):
#: (help, type, metavar, choices).
MODEL_OPTIONS = {
    "window": ("side of the model's view in pixels", positive, "N", None),
    "centre": ("side of the central square of pixel tokens", positive, "N", None),
    "patch": ("side of a periphery patch in pixels", positive, "N", None),
    "d_model": ("width of the tokens", positive, "N", None),
    "heads": ("attention heads", positive, "N", None),
    "blocks": ("Transformer blocks", positive, "N", None),
    "d_ff": ("hidden width of each block's MLP", positive, "N", None),
    "inputs": ("what the model sees: color, and any of {inputs} (e.g. color,age,previous)", parse_inputs, "NAMES", None),
    "input_dropout": ("in training, the probability of hiding an event's placer (and, separately, its users)", fraction, "P",
                      None),
    "time_objective": ("the time model's loss: mse on the capped time, or bce on 'changes within the horizon'",
                       lambda text: choice_of("TIME_OBJECTIVES", text), "OBJECTIVE", None),
    "pixel_head": ("yes: the color head reads the event pixel's token beside the cls token; no: the cls token alone, as the original",
                   yes_no, "yes|no", None),
}


def choice_of(name: str, text: str) -> str:
    """``text`` when it is one of :mod:`rplacevit.models`' ``name`` (read when an option is
    parsed: the command line imports torch only for the commands that need it)."""
    from . import models

    allowed = getattr(models, name)
    if text not in allowed:
        raise argparse.ArgumentTypeError(f"{text!r}: expected one of {', '.join(allowed)}")
    return text
time_type, duration_type, region_type = argument_type(parse_time), argument_type(parse_duration), argument_type(parse_region)
picture_region_type = argument_type(lambda text: "all" if text == "all" else parse_region(text))


def add_output(parser: argparse.ArgumentParser, what: str, **kwargs) -> None:
    parser.add_argument("-o", "--output", dest="out", help=what, **kwargs)


def add_region(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--region", type=region_type, metavar="x0,y0,x1,y1", help=f"{what} (pixels; x1, y1 exclusive)")


def add_picture_region(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--region", type=picture_region_type, metavar="x0,y0,x1,y1|all",
                        help="crop (pixels; x1, y1 exclusive), or all for the whole canvas (default: the bounding box of the events, "
                             "as rplacevit info shows it)")


def add_time_range(parser: argparse.ArgumentParser, first: str) -> None:
    """``--from``/``--to``: the API's ``t0``/``t1`` (ISO 8601 or ms), mapped here once."""
    parser.add_argument("--from", dest="t0", type=time_type, metavar="TIME", help=f"first timestamp taken (ISO 8601 or ms; default: {first})")
    parser.add_argument("--to", dest="t1", type=time_type, metavar="TIME", help="take events before TIME (default: to the end)")


def add_quiet(parser: argparse.ArgumentParser, what: str = "print nothing but errors") -> None:
    parser.add_argument("--quiet", action="store_true",
                        help=f"{what} (else progress on stderr: a bar on a terminal, a line every {LINE_INTERVAL_S:g} s in a log)")


def add_device(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--threads``: where the models run."""
    parser.add_argument("--device", choices=DEVICES, default="auto", help="where the models run (default: %(default)s: cuda when there is one)")
    parser.add_argument("--threads", type=positive, default=DEFAULT_THREADS, metavar="N",
                        help="torch CPU threads; the count changes the floating-point result (default: %(default)s)")


def options_demo(p: argparse.ArgumentParser) -> None:
    add_output(p, "output folder (default: %(default)s)", default="rplacevit-demo")
    add_device(p)
    add_quiet(p, "show no progress")


def options_synth(p: argparse.ArgumentParser) -> None:
    add_output(p, "output file (.csv, or .csv.gz for gzip)", required=True)
    p.add_argument("--rows", type=positive, required=True, help="number of data rows to write")
    p.add_argument("--seed", type=natural, default=0, help="random seed (default: %(default)s)")
    p.add_argument("--year", type=int, choices=store.YEARS, default=store.DEFAULT_YEAR,
                   help="the r/place whose format, canvas and palette the history has (default: %(default)s)")
    add_quiet(p)


def options_ingest(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT", help=".csv, .csv.gz or .csv.gzip files (single file or numbered parts), or folders of them (what rplacevit download "
                        "wrote: checked against its manifest)")
    p.add_argument("--sample", action="store_true", help=f"ingest the sample shipped in the package ({SAMPLE_CSV.name}) instead")
    add_output(p, "dataset folder to create", required=True, metavar="DATASET")
    p.add_argument("--partition-size", type=positive, default=store.PARTITION_SIZE, metavar="N",
                   help=f"events per SQLite partition, at least {store.MIN_PARTITION_SIZE:,} (default: %(default)s)")
    p.add_argument("--on-error", choices=store.ON_ERROR, default="fail",
                   help="stop at the first bad row, or skip bad rows into DATASET/rejects.csv (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset")
    p.add_argument("--max-rectangle-pixels", type=natural, default=store.MAX_RECTANGLE_PIXELS, metavar="N",
                   help="the most pixels the moderation rectangles of all inputs may cover together (default: %(default)s)")
    p.add_argument("--year", type=int, choices=store.YEARS,
                   help="read the inputs as this year's format whatever their first line says (default: told by the headers)")
    p.add_argument("--dedupe", action="store_true",
                   help="drop each event equal to an earlier one of its millisecond (same user, pixel, color) and count them")
    add_quiet(p)


def add_download_options(p: argparse.ArgumentParser) -> None:
    """What to fetch and how: the options ``download`` and ``get`` share."""
    from .download import BASE_URLS, DEFAULT_YEAR, PART_COUNTS, YEARS

    p.add_argument("--year", type=int, choices=YEARS, default=DEFAULT_YEAR, help="which r/place (default: %(default)s)")
    p.add_argument("--parts", default="all", metavar="all|0-9,12",
                   help=f"which numbered parts ({', '.join(f'{y}: 0..{n - 1}' for y, n in PART_COUNTS.items())}; default: %(default)s)")
    p.add_argument("--combined", action="store_true", help="the one combined file instead of the parts (2022 only)")
    p.add_argument("--jobs", type=positive, default=4, metavar="N", help="files fetched at once (default: %(default)s)")
    p.add_argument("--base-url", metavar="URL", help="where the files are, when they moved (default: "
                   + "; ".join(f"{y}: {url}" for y, url in BASE_URLS.items()) + ")")
    p.add_argument("--url-list", metavar="FILE", help="a text file of URLs to fetch instead, one per line, each optionally "
                   "followed by its size in bytes (URL BYTES), which bounds a server that announces none")
    p.add_argument("--retries", type=natural, default=5, metavar="N",
                   help="retries of a file after a connection error, a timeout or a 5xx, waiting 1, 2, 4… s (default: %(default)s)")
    p.add_argument("--verify", action="store_true", help="check every complete file again (size, sha256, gzip) and fetch what fails")
    add_quiet(p)


def options_download(p: argparse.ArgumentParser) -> None:
    add_output(p, "the folder the files go to", required=True, metavar="DIR")
    add_download_options(p)


def options_get(p: argparse.ArgumentParser) -> None:
    add_output(p, "the dataset folder to build", required=True, metavar="DATASET")
    p.add_argument("--files", metavar="DIR", help="where the downloaded files go (default: DATASET-files beside the dataset)")
    p.add_argument("--force", action="store_true", help="replace an existing dataset of other files")
    add_download_options(p)


def options_verify(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    add_quiet(p, "print nothing but problems")


def options_render(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    p.add_argument("--at", required=True, type=time_type, metavar="TIME", help="the moment: every event with timestamp <= TIME")
    add_output(p, "PNG file", required=True)
    add_picture_region(p)
    p.add_argument("--scale", type=positive, default=1, metavar="K", help="enlarge each pixel K times (default: %(default)s)")


def options_timelapse(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    add_output(p, "mp4 file (H.264)", required=True)
    p.add_argument("--gif", metavar="GIF", help="also write a gif")
    p.add_argument("--every", type=duration_type, default="30m", help="time between frames: 30m, 1h, 90s… (default: %(default)s)")
    p.add_argument("--fps", type=positive, default=30, help="frames per second (default: %(default)s)")
    p.add_argument("--clock", action="store_true", help="stamp each frame with its time (UTC) below the canvas")
    add_picture_region(p)
    p.add_argument("--scale", type=positive, default=1, metavar="K", help="enlarge each pixel K times (default: %(default)s)")
    add_quiet(p, "show no progress")


def options_train(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    from .models import INPUTS, PRESETS, ModelConfig

    add_options(p, TrainConfig)
    defaults = {field.name: field.default for field in dataclasses.fields(ModelConfig)}
    by_preset = set(PRESETS["tiny"])  # the presets set the width and depth; window, centre, patch keep ModelConfig's
    for name, (what, kind, metavar, choices) in MODEL_OPTIONS.items():
        default = defaults[name]
        if name in by_preset:
            default = "the preset's"
        elif isinstance(default, bool):
            default = "yes" if default else "no"
        elif name == "inputs":
            default = ",".join(default)
        what = what.replace("{inputs}", ", ".join(INPUTS[1:]))  # named once, in rplacevit.models
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, metavar=metavar, choices=choices, help=f"{what} (default: {default})")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint of RUN_DIR")
    add_quiet(p, "show no progress")


def options_infer(p: argparse.ArgumentParser) -> None:
    from .infer import InferConfig

    p.add_argument("--color-model", required=True, metavar="CKPT", help="the color model checkpoint (a run's model.pt)")
    picker = p.add_mutually_exclusive_group()
    picker.add_argument("--time-model", metavar="CKPT", help="the time model checkpoint: picks the pixel that should change soonest")
    picker.add_argument("--random-pixel", action="store_true", help="pick pixels at random instead of with a time model")
    add_options(p, InferConfig)
    add_quiet(p, "show no progress")


def options_forecast(p: argparse.ArgumentParser) -> None:
    from .forecast import ForecastConfig

    add_options(p, ForecastConfig)
    add_quiet(p)


def options_evaluate(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    p.add_argument("--color-model", required=True, action="append", metavar="[NAME=]CKPT",
                   help="a color model checkpoint (a run's model.pt); repeat it to compare several, each labelled NAME or by its run folder")
    p.add_argument("--time-model", action="append", metavar="[NAME=]CKPT", help="also score a time model checkpoint (repeatable, as --color-model)")
    add_time_range(p, "where the models' training data ends")
    add_region(p, "only events in this region")
    p.add_argument("--samples", type=parse_samples, default=20_000, metavar="N", help="a uniform sample of N events, or 'all' (default: %(default)s)")
    p.add_argument("--seed", type=natural, default=0, help="seed of the sample (default: %(default)s)")
    p.add_argument("--batch-size", type=positive, default=256, help="events per forward pass (default: %(default)s)")
    add_device(p)
    p.add_argument("--allow-overlap", action="store_true", help="allow --from before the end of a model's training data")
    p.add_argument("--allow-other-palette", action="store_true",
                   help="evaluate on a dataset whose palette is not the one the models were trained on")
    p.add_argument("--force", action="store_true", help="replace an existing report folder")
    add_quiet(p, "show no progress")
    add_output(p, "the report folder to write", required=True, metavar="REPORT_DIR")


def options_users(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    p.add_argument("--until", type=time_type, metavar="TIME", help="count only the events before TIME (default: all)")
    p.add_argument("--json", action="store_true", help="print JSON")


def options_users_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    add_output(p, "folder for clusters.npy, clusters.csv, pca2d.png, pca3d.png, clusters.png", required=True, metavar="DIR")
    p.add_argument("--clusters", type=positive, default=100, help="number of clusters (default: %(default)s)")
    p.add_argument("--until", type=time_type, metavar="TIME", help="cluster on the events before TIME (default: all)")
    p.add_argument("--seed", type=natural, default=0, help="seed of k-means, PCA and the points drawn (default: %(default)s)")
    p.add_argument("--sample", type=positive, default=20_000, metavar="N", help="at most N users drawn in the PCA plots (default: %(default)s)")
    p.add_argument("--vectors", choices=("seed+behaviour", "seed"), default="seed+behaviour",
                   help="what k-means sees: the original's 38-number vector with or without how each user plays (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="replace a clusters folder written before")
    add_quiet(p)


def options_user(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    p.add_argument("user", metavar="USER", help="a user id (digits) or an original user hash")
    p.add_argument("--png", metavar="PNG", help="also draw the canvas around the user's pixels")


def options_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    add_output(p, "the parquet file to write", required=True, metavar="FILE.parquet")
    add_region(p, "only the events in this region, stored coordinates like every --region")
    add_time_range(p, "the first event")
    add_quiet(p)


def options_view(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    p.add_argument("--port", type=natural, default=8000, help="TCP port; 0 picks a free one (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; anything but loopback lets other machines read the dataset (default: %(default)s)")
    p.add_argument("--color-model", metavar="CKPT", help="a color model checkpoint: its top 3 colors for a clicked pixel")
    p.add_argument("--time-model", metavar="CKPT", help="a time model checkpoint: its predicted \"changes soon\" layer")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    add_device(p)
    p.add_argument("--allow-other-palette", action="store_true", help="use models trained on a dataset of another palette")


def options_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("dataset", metavar="DATASET", help=DATASET_HELP)
    p.add_argument("--json", action="store_true", help="print JSON")


#: name → (help, options, run), in the order ``--help`` lists them.
COMMANDS = {
    "demo": ("run the whole pipeline on the sample shipped in the package", options_demo, cmd_demo),
    "synth": ("write a realistic synthetic history in an official r/place CSV format (2022 unless --year)", options_synth, cmd_synth),
    "download": ("download the official r/place files: resumable, verified, parallel", options_download, cmd_download),
    "get": ("download, ingest and verify in one command; each stage resumes where it stopped", options_get, cmd_get),
    "ingest": ("ingest official r/place CSV files into a dataset folder", options_ingest, cmd_ingest),
    "verify": ("check every byte of a dataset against its checksums, and its files against each other", options_verify, cmd_verify),
    "render": ("render the canvas at a moment as a PNG", options_render, cmd_render),
    "timelapse": ("render a video of the canvas through time", options_timelapse, cmd_timelapse),
    "train": ("train a color or time model (torchrun for several GPUs)", options_train, cmd_train),
    "infer": ("let the models paint a canvas; write mp4, gif and png", options_infer, cmd_infer),
    "evaluate": ("score the models against simple baselines on later events", options_evaluate, cmd_evaluate),
    "forecast": ("forecast the canvas one horizon ahead, step by step, and score it against the real one and simple rules",
                 options_forecast, cmd_forecast),
    "users": ("per-user features over the events before a moment, summarised (rplacevit.users.features for all)", options_users,
              cmd_users),
    "users cluster": ("cluster the users by the original's feature vector; write the clusters and their pictures",
                      options_users_cluster, cmd_users_cluster),
    "user": ("one user's placements, and whether each survived 5 minutes", options_user, cmd_user),
    "export": ("write the events as parquet (timestamp, user, color, official x and y) for DuckDB, polars, pandas",
               options_export, cmd_export),
    "view": ("browse the canvas through time in a web browser, with the models' predictions", options_view, cmd_view),
    "info": ("summarise a dataset folder", options_info, cmd_info),
}

#: Commands of two words, typed as two arguments (``rplacevit users cluster``).
TWO_WORDS = {tuple(name.split()): name for name in COMMANDS if " " in name}


def build_parser(command: str | None = "all") -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The parser, and the parser of each command; only ``command``'s options are added ("all":
    every command's, None: none), since those of train and infer import torch."""
    parser = argparse.ArgumentParser(
        prog="rplacevit",
        description="The r/place canvas history as a fast, exact dataset, and Vision Transformers that paint it.",
    )
    parser.add_argument("--version", action="version", version=f"rplacevit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parsers = {}
    for name, (what, options, run) in COMMANDS.items():
        parsers[name] = sub.add_parser(name, help=what, description=what[0].upper() + what[1:] + ".", epilog=EPILOG)
        if command in ("all", name):
            options(parsers[name])
        parsers[name].set_defaults(run=run)
    return parser, parsers


def main(argv: list[str] | None = None) -> int:
    """Runs one command. Exit status: 0 done, 1 a runtime error (bad data, a damaged file, no
    disk space), 2 a usage error (a bad argument), 130 interrupted (Ctrl-C), 143 terminated
    (SIGTERM); an error is one line on stderr."""
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    for words, name in TWO_WORDS.items():
        if tuple(argv[: len(words)]) == words:
            argv = [name, *argv[len(words):]]
    command = next((a for a in argv if not a.startswith("-")), None)
    parser, parsers = build_parser(command if command in COMMANDS else None)
    takes_dataset = command in COMMANDS and any(a.dest == "dataset" and not a.option_strings for a in parsers[command]._actions)
    if takes_dataset and any(a in ("--data", "--dataset") or a.startswith(("--data=", "--dataset=")) for a in argv):
        print(f"rplacevit {command}: error: the dataset is the first argument: rplacevit {command} DATASET … "
              "(no --data or --dataset)", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    names = flags_of(parsers[args.command])

    def fail(prefix: str, error: BaseException, code: int) -> int:
        print(f"{prefix}: error: {as_flags(str(error), names)}", file=sys.stderr)
        return code

    previous = stop_on_sigterm()
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
        return fail(f"rplacevit {args.command}", error, 2)
    except MemoryError as error:  # the core's message says "out of memory: what needs how much"
        return fail("rplacevit", error if str(error) else MemoryError("out of memory"), 1)
    except (FormatError, DatasetError, OSError, ValueError, OverflowError) as error:
        return fail("rplacevit", error, 1)
    finally:
        signal.signal(signal.SIGTERM, previous)
