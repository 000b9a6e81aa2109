"""Users: per-user features over the events before a moment (computed in Rust, so that a model
given them sees no future), the original project's feature vector, clusters of users with
pictures, and one user's placements.

The features of a History (:func:`features`) are kept in its dataset folder, under
``users/features-<until>/`` (one ``.npy`` per column, memory-mapped when asked again), tied to
the dataset's generation: a dataset ingested again gets new ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np

from . import ArgumentError, outputs
from .render import padded_hex, palette_lookup
from ._core import OVERWRITTEN_WITHIN_MS
from .files import atomic_path
from .history import History
from .options import quoted
from .times import format_time

#: The columns of :func:`features`, each ``(U,)`` by user id, ``colors`` ``(U, 32)``.
COLUMNS = ("count", "first_ms", "last_ms", "mean_x", "std_x", "mean_y", "std_y", "mean_ms", "colors", "distinct_pixels",
           "changed_share", "median_gap_ms", "gap_spread", "overwritten_share")
#: ``first_ms`` and ``last_ms`` of a user without events before ``until``.
NO_EVENT = np.iinfo(np.int64).min
#: Width of the original's feature vector (:func:`seed_vector`).
SEED_WIDTH = 6 + 32


def features(history: History, until: int | None = None) -> dict[str, np.ndarray]:
    """For every user id, what the user did in the events with timestamp < ``until`` (ms; None:
    all events): ``count``; ``first_ms``, ``last_ms`` (int64 ms, :data:`NO_EVENT` without
    events); ``mean_x``, ``std_x``, ``mean_y``, ``std_y`` (pixels, population std); ``mean_ms``;
    ``colors`` ((U, 32) counts per palette index); ``distinct_pixels``; ``changed_share`` (of
    the placements that changed their pixel's color); ``median_gap_ms`` (median time between
    consecutive placements, NaN with fewer than two); ``gap_spread`` ((third − first quartile)
    / median of those times, quartiles by nearest rank below; NaN with fewer than 4 gaps: near 0
    for a bot placing every cooldown); ``overwritten_share`` (of the placements
    whose pixel the next event before ``until`` changed within 5 minutes). Floating columns are
    NaN for users without events before ``until``. Computed once per ``until`` and dataset, then
    read back memory-mapped (see the module docstring)."""
    if until is not None and int(until) <= history.time_range[0]:
        raise ArgumentError(f"`until` {format_time(int(until))} is not after the first event ({format_time(history.time_range[0])}): "
                            "no events to describe")
    folder = cache_folder(history, until)
    cached = read_cached(folder, history.generation)
    if cached is not None:
        return cached
    computed = history._core.user_features(None if until is None else int(until))
    columns = {name: computed[name] for name in COLUMNS}
    write_cached(folder, columns, history.generation)
    return columns


def cache_folder(history: History, until: int | None) -> Path:
    return history.path / "users" / f"features-{'all' if until is None else int(until)}"


GENERATION_FILE = "generation.txt"


def read_cached(folder: Path, generation: str) -> dict[str, np.ndarray] | None:
    try:
        if (folder / GENERATION_FILE).read_text().strip() != generation:
            return None
        return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in COLUMNS}
    except (OSError, ValueError):
        return None


def write_cached(folder: Path, columns: dict[str, np.ndarray], generation: str) -> None:
    """Keeps the features beside the dataset, published whole or not at all; a dataset that
    cannot be written to (read-only, full) just does without."""
    try:
        with atomic_path(folder, replaceable=lambda found: read_cached(found, generation) is None) as staging:
            staging.mkdir()
            for name, column in columns.items():
                np.save(staging / f"{name}.npy", column)
            (staging / GENERATION_FILE).write_text(generation + "\n")
    except (OSError, ValueError):
        pass


def seed_vector(columns: dict[str, np.ndarray]) -> np.ndarray:
    """The original project's ``(U, 38)`` float32 feature vector of each user: mean and std of x
    and y / 1000, count / 1000 capped at 1, the mean timestamp normalised to the period of the
    events counted (0 at the first, 1 at the last), and the 32 colors as shares of the count.
    Zeros for users without events."""
    count = np.asarray(columns["count"], dtype=np.float64)
    active = count > 0
    first, last = columns["first_ms"][active], columns["last_ms"][active]
    t0 = int(first.min()) if active.any() else 0
    span = max(int(last.max()) - t0, 1) if active.any() else 1
    vector = np.zeros((len(count), SEED_WIDTH), dtype=np.float32)
    for k, name in enumerate(("mean_x", "std_x", "mean_y", "std_y")):
        vector[active, k] = np.asarray(columns[name])[active] / 1000
    vector[active, 4] = np.minimum(count[active] / 1000, 1)
    vector[active, 5] = (np.asarray(columns["mean_ms"])[active] - t0) / span
    vector[active, 6:] = np.asarray(columns["colors"])[active] / count[active, None]
    return vector


#: The columns of :func:`behaviour_vector`.
BEHAVIOUR = ("log10 count", "log10 median gap (s)", "log10 gap spread", "changed share", "overwritten share", "distinct pixels / count")


def behaviour_vector(columns: dict[str, np.ndarray]) -> np.ndarray:
    """``(U, 6)`` float32: how each user plays (see :data:`BEHAVIOUR`). A user with one placement
    gets the whole period as median gap; one with too few gaps for a spread, 1 (irregular).
    Zeros for users without events."""
    count = np.asarray(columns["count"], dtype=np.float64)
    active = count > 0
    vector = np.zeros((len(count), len(BEHAVIOUR)), dtype=np.float32)
    if not active.any():
        return vector
    period = max(int(columns["last_ms"][active].max()) - int(columns["first_ms"][active].min()), 1)
    gap = np.asarray(columns["median_gap_ms"])[active]
    spread = np.asarray(columns["gap_spread"])[active]
    vector[active] = np.column_stack([
        np.log10(count[active]),
        np.log10(1 + np.where(np.isnan(gap), period, gap) / 1000),
        np.log10(np.where(np.isnan(spread), 1.0, spread) + 1e-3),
        np.asarray(columns["changed_share"])[active],
        np.asarray(columns["overwritten_share"])[active],
        np.asarray(columns["distinct_pixels"])[active] / count[active],
    ])
    return vector


#: What ``cluster`` can cluster on: the original's vector alone, or with the behaviour.
CLUSTER_VECTORS = ("seed+behaviour", "seed")


def cluster_vectors(columns: dict[str, np.ndarray], active: np.ndarray, which: str) -> np.ndarray:
    """The vectors k-means sees for the users ``active``: each block standardised (zero mean,
    unit variance per column) and, for ``seed+behaviour``, scaled by 1/√width, so that the six
    numbers of how a user plays weigh as much as the 38 of where and what."""
    def standardised(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        spread = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(spread > 0, spread, 1)

    seed = standardised(seed_vector(columns)[active])
    if which == "seed":
        return seed
    if which != "seed+behaviour":
        raise ArgumentError(f"`vectors` must be one of {CLUSTER_VECTORS}, not {which!r}")
    behaviour = standardised(behaviour_vector(columns)[active])
    return np.hstack([seed / np.sqrt(seed.shape[1]), behaviour / np.sqrt(behaviour.shape[1])])


def as_frame(columns: dict[str, np.ndarray]):
    """The features as a pandas DataFrame (or a polars one, with only polars installed), one row
    per user id, ``colors`` as ``color_0`` … ``color_31``. Needs pandas or polars."""
    flat = {name: np.asarray(column) for name, column in columns.items() if name != "colors"}
    colors = np.asarray(columns["colors"])
    flat.update({f"color_{k}": colors[:, k] for k in range(colors.shape[1])})
    try:
        import pandas

        return pandas.DataFrame(flat)
    except ImportError:
        pass
    try:
        import polars

        return polars.DataFrame(flat)
    except ImportError:
        raise ImportError("as_frame needs pandas or polars: pip install pandas (or polars)") from None


def resolve_user(history: History, user: str | int) -> int:
    """A user id from a dense id (an integer, or text of digits) or an original hash."""
    number = None
    if isinstance(user, (int, np.integer)):
        number = int(user)
    elif isinstance(user, str) and user.isascii() and user.isdigit():  # not "²", which isdigit() takes
        number = int(user) if len(user) <= 20 else -1  # int() refuses 4,300 digits and more
    if number is not None:
        if not 0 <= number < history.users:
            shown = quoted(user) if isinstance(user, str) and len(user) > 20 else number
            raise ArgumentError(f"user {shown}: the dataset has user ids 0 to {history.users - 1}")
        return number
    found = history.user_id(str(user))
    if found is None:
        raise ArgumentError(f"user {quoted(user)}: no user of the dataset has this hash (or give a user id)")
    return found


def placements(history: History, user: str | int) -> dict[str, np.ndarray]:
    """One user's placements, in time order: ``id``, ``timestamp`` (ms), ``x``, ``y``, ``color``,
    and ``survived`` (no other event changed the pixel within 5 minutes)."""
    ids = history.user_events(resolve_user(history, user))
    columns = history.events()
    next_times = history.next_placement_times(ids)
    timestamps = columns["timestamp"][ids]
    return {"id": ids, "timestamp": timestamps, "x": columns["x"][ids], "y": columns["y"][ids], "color": columns["color"][ids],
            "survived": next_times - timestamps > OVERWRITTEN_WITHIN_MS}


def picture(history: History, user: str | int, out: str | os.PathLike[str]) -> Path:
    """A PNG of the canvas around the user's placements, at their last one: the canvas faded,
    the user's pixels in the colors they placed there last, each pixel enlarged so that the
    picture is about 256 pixels wide."""
    import imageio.v3 as iio

    from .files import check_suffix
    from .render import to_rgb

    check_suffix(out, ".png", "`out`")
    mine = placements(history, user)
    if len(mine["id"]) == 0:
        raise ArgumentError(f"user {user}: no placements")
    canvas = history.canvas_before(int(mine["id"][-1]) + 1)
    margin = 16
    x0, y0 = max(int(mine["x"].min()) - margin, 0), max(int(mine["y"].min()) - margin, 0)
    x1 = min(int(mine["x"].max()) + margin + 1, history.canvas_width)
    y1 = min(int(mine["y"].max()) + margin + 1, history.canvas_height)
    rgb = to_rgb(canvas, (x0, y0, x1, y1), palette=history.palette_rgb).astype(np.float32)
    faded = (0.35 * rgb + 0.65 * 255).astype(np.uint8)
    pixels = mine["y"].astype(np.int64) * history.canvas_width + mine["x"]
    _, last = np.unique(pixels[::-1], return_index=True)
    last = len(pixels) - 1 - last  # each pixel's last placement by the user
    faded[mine["y"][last] - y0, mine["x"][last] - x0] = to_rgb(mine["color"][last][None, :], palette=history.palette_rgb)[0]
    scale = max(1, 256 // max(x1 - x0, y1 - y0))
    picture = faded.repeat(scale, axis=0).repeat(scale, axis=1)
    with atomic_path(out) as temporary:
        iio.imwrite(temporary, picture)
    return Path(out)


# --- clusters ------------------------------------------------------------------------------

#: Side, in pixels, of the squares counted in the heatmaps of ``clusters.png``.
HEAT_BIN = 40
#: clusters.png shows at most this many clusters (the largest), so that its size is bounded
#: whatever ``--clusters`` is (2,963 tiles took 5 GB).
MOSAIC_CLUSTERS = 100
#: Up to this many users, k-means is scikit-learn's exact KMeans, which finds small tight
#: groups (the bots of a synthetic history); above, MiniBatchKMeans, which 10 million users need.
EXACT_KMEANS_USERS = 100_000


def cluster(history: History, out: str | os.PathLike[str], clusters: int = 100, until: int | None = None, seed: int = 0,
            sample: int = 20_000, vectors: str = CLUSTER_VECTORS[0], progress: bool = True, force: bool = False,
            say: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Clusters the users with events before ``until``: their vectors (:func:`cluster_vectors`:
    the standardised :func:`seed_vector`, with the :func:`behaviour_vector` unless ``vectors``
    is ``"seed"``, the original's choice) → scikit-learn's k-means (``clusters`` clusters,
    ``seed``; exact up to :data:`EXACT_KMEANS_USERS` users, mini-batch above) → PCA to 2 and 3
    dimensions. Writes into the folder ``out``: ``clusters.npy`` (the cluster of every user id,
    −1 without events), ``clusters.csv`` (per cluster: size, mean count, top 3 colors, centre of
    activity, median gap), ``pca2d.png`` and ``pca3d.png`` (at most ``sample`` users drawn,
    colored by cluster) and ``clusters.png`` (per cluster, where its users placed and its color
    histogram; the :data:`MOSAIC_CLUSTERS` largest clusters when there are more, so the picture
    stays bounded). ``out`` is replaced as :mod:`rplacevit.outputs` says: a clusters folder, with
    ``force``. Deterministic for a seed. ``say`` gets one line per stage (``print`` unless
    ``progress`` is off). Needs scikit-learn (``pip install 'rplacevit[analysis]'``)."""
    try:
        from sklearn.cluster import KMeans, MiniBatchKMeans
        from sklearn.decomposition import PCA
    except ImportError:
        raise ImportError("rplacevit users cluster needs scikit-learn: pip install 'rplacevit[analysis]'") from None
    if not (isinstance(clusters, int) and clusters >= 1) or not (isinstance(sample, int) and sample >= 1):
        raise ArgumentError(f"`clusters` = {clusters!r}, `sample` = {sample!r}: expected positive integers")
    if not (isinstance(seed, int) and 0 <= seed < 2**32):  # what scikit-learn's random_state takes
        raise ArgumentError(f"`seed` = {seed!r}: expected an integer from 0 to {2**32 - 1}")
    say = say or (print if progress else (lambda _: None))
    out = Path(out)
    outputs.check(out, "clusters", force)
    say("user features…")
    columns = features(history, until)
    active = np.flatnonzero(np.asarray(columns["count"]) > 0)
    if len(active) == 0:
        raise ArgumentError("no user placed a pixel before `until`: nothing to cluster")
    if clusters > len(active):
        raise ArgumentError(f"`clusters` = {clusters} is more than the {len(active):,} users with events before `until`")
    standardised = cluster_vectors(columns, active, vectors)
    exact = len(active) <= EXACT_KMEANS_USERS
    say(f"{'k-means' if exact else 'mini-batch k-means'} of {len(active):,} users into {clusters} clusters…")
    if exact:
        kmeans = KMeans(n_clusters=clusters, random_state=seed, n_init=1)
    else:
        kmeans = MiniBatchKMeans(n_clusters=clusters, random_state=seed, n_init=3, batch_size=4096)
    labels = kmeans.fit_predict(standardised)
    say("PCA…")
    solver = "covariance_eigh" if len(active) > 10 * standardised.shape[1] else "full"
    components = min(3, len(active))  # two users have one principal component; the plots show 0 for the missing
    try:
        projected = PCA(n_components=components, random_state=seed, svd_solver=solver).fit_transform(standardised)
    except ValueError:  # scikit-learn before 1.5 has no covariance_eigh
        projected = PCA(n_components=components, random_state=seed).fit_transform(standardised)
    projected = np.pad(projected, ((0, 0), (0, 3 - components)))
    by_user = np.full(len(columns["count"]), -1, dtype=np.int32)
    by_user[active] = labels
    drawn = np.sort(np.random.default_rng(seed).permutation(len(active))[:sample])

    written = {}
    with outputs.staged_folder(out, "clusters", force) as staging:
        np.save(staging / "clusters.npy", by_user)
        write_cluster_table(staging / "clusters.csv", columns, by_user, clusters, history.palette)
        say("pictures…")
        plot_projection(staging / "pca2d.png", projected[drawn, :2], labels[drawn], clusters, len(active))
        plot_projection(staging / "pca3d.png", projected[drawn], labels[drawn], clusters, len(active))
        plot_clusters(staging / "clusters.png", history, columns, by_user, clusters, until, progress)
    for name in ("clusters.npy", "clusters.csv", "pca2d.png", "pca3d.png", "clusters.png"):
        written[name] = out / name
    return written


def cluster_summaries(columns: dict[str, np.ndarray], by_user: np.ndarray, clusters: int, palette: list[str] | None = None) -> list[dict]:
    """Per cluster: size, mean count, top 3 colors (``#RRGGBB`` of ``palette``, a dataset's;
    None: 2022's), centre of activity (the placements' mean pixel), and the median of its
    users' median gaps (ms)."""
    hexes = padded_hex(palette)
    count = np.asarray(columns["count"], dtype=np.float64)
    rows = []
    for k in range(clusters):
        members = by_user == k
        size = int(members.sum())
        weights = count[members]
        colors = np.asarray(columns["colors"])[members].sum(axis=0)
        colors = colors.astype(np.int64)
        top = [hexes[c] for c in np.argsort(-colors, kind="stable")[:3] if colors[c] > 0]
        total = weights.sum()
        centre = (float((np.asarray(columns["mean_x"])[members] * weights).sum() / total),
                  float((np.asarray(columns["mean_y"])[members] * weights).sum() / total)) if total > 0 else (float("nan"), float("nan"))
        gaps = np.asarray(columns["median_gap_ms"])[members]
        gaps = gaps[~np.isnan(gaps)]
        rows.append({"cluster": k, "size": size, "mean_count": float(weights.mean()) if size else float("nan"), "top_colors": top,
                     "centre_x": centre[0], "centre_y": centre[1], "median_gap_ms": float(np.median(gaps)) if len(gaps) else float("nan")})
    return rows


def write_cluster_table(path: Path, columns, by_user, clusters: int, palette: list[str] | None = None) -> None:
    import csv

    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cluster", "size", "mean_count", "top_colors", "centre_x", "centre_y", "median_gap_ms"])
        for row in cluster_summaries(columns, by_user, clusters, palette):
            writer.writerow([row["cluster"], row["size"], f"{row['mean_count']:.2f}", " ".join(row["top_colors"]),
                             f"{row['centre_x']:.1f}", f"{row['centre_y']:.1f}", f"{row['median_gap_ms']:.0f}"])


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_projection(path: Path, points: np.ndarray, labels: np.ndarray, clusters: int, users: int) -> None:
    plt = _pyplot()
    three = points.shape[1] == 3
    figure = plt.figure(figsize=(7, 6))
    axes = figure.add_subplot(projection="3d" if three else None)
    colors = plt.get_cmap("tab20")(labels % 20)
    axes.scatter(*points.T, c=colors, s=3, alpha=0.6, linewidths=0)
    # Limits around the bulk of the users, so that a few outliers do not shrink the rest to a dot.
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    margin = (high - low) * 0.05 + 1e-9
    for k, limit in enumerate((axes.set_xlim, axes.set_ylim) + ((axes.set_zlim,) if three else ())):
        limit(low[k] - margin[k], high[k] + margin[k])
    axes.set_xlabel("principal component 1")
    axes.set_ylabel("principal component 2")
    if three:
        axes.set_zlabel("principal component 3")
    axes.set_title(f"{len(points):,} of {users:,} users, {clusters} clusters", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_clusters(path: Path, history: History, columns, by_user: np.ndarray, clusters: int, until: int | None, progress: bool) -> None:
    """Per cluster (the :data:`MOSAIC_CLUSTERS` largest): a heatmap of its placements (in squares
    of :data:`HEAT_BIN` pixels, the events before ``until``) and its users' color histogram."""
    from .progress import bar as progress_bar

    plt = _pyplot()
    sizes = np.bincount(by_user[by_user >= 0], minlength=clusters)
    shown = np.sort(np.argsort(-sizes, kind="stable")[:MOSAIC_CLUSTERS])  # the largest, in cluster order
    tile_of = np.full(clusters + 1, -1, dtype=np.int64)  # cluster → tile; index -1 (no cluster) → -1
    tile_of[shown] = np.arange(len(shown))
    tiles = len(shown)
    bins_x, bins_y = -(-history.canvas_width // HEAT_BIN), -(-history.canvas_height // HEAT_BIN)
    heat = np.zeros((tiles, bins_y * bins_x), dtype=np.int64)
    events = history.events()
    end = len(history) if until is None else int(np.searchsorted(events["timestamp"], until))
    step = 1 << 22
    for start in progress_bar("clusters.png", "block", progress, iterable=range(0, end, step)):
        stop = min(start + step, end)
        tile = tile_of[by_user[events["user_id"][start:stop]]]
        cell = (events["y"][start:stop] // HEAT_BIN).astype(np.int64) * bins_x + events["x"][start:stop] // HEAT_BIN
        keep = tile >= 0
        heat += np.bincount(tile[keep] * (bins_x * bins_y) + cell[keep], minlength=tiles * bins_x * bins_y).reshape(tiles, -1)
    colors = np.zeros((clusters, 32), dtype=np.int64)
    np.add.at(colors, by_user[by_user >= 0], np.asarray(columns["colors"])[by_user >= 0])

    # One picture of tiles (a single image, not one plot per cluster: a hundred clusters draw
    # in a second): each tile a heatmap over its color histogram.
    rgb = palette_lookup(history.palette_rgb)
    side, strip, pad = 100, 24, 6
    scale_y, scale_x = max(1, side // bins_y), max(1, side // bins_x)
    per_row = min(tiles, 10)
    rows = -(-tiles // per_row)
    tile_h, tile_w = bins_y * scale_y + strip + pad, bins_x * scale_x + pad
    mosaic = np.full((rows * tile_h + pad, per_row * tile_w + pad, 3), 255, dtype=np.uint8)
    cmap = plt.get_cmap("magma")
    bar = max(1, (bins_x * scale_x) // 32)
    for t, k in enumerate(shown):
        top, left = pad + (t // per_row) * tile_h, pad + (t % per_row) * tile_w
        counts = np.log1p(heat[t].reshape(bins_y, bins_x))
        shaded = (cmap(counts / max(counts.max(), 1e-9))[..., :3] * 255).astype(np.uint8)
        mosaic[top: top + bins_y * scale_y, left: left + bins_x * scale_x] = shaded.repeat(scale_y, 0).repeat(scale_x, 1)
        shares = colors[k] / max(colors[k].sum(), 1)
        base = top + bins_y * scale_y + strip
        for c in np.flatnonzero(shares):
            height = max(1, int(round(shares[c] / shares.max() * (strip - 2))))
            mosaic[base - height: base, left + c * bar: left + (c + 1) * bar] = rgb[c]
    figure = plt.figure(figsize=(mosaic.shape[1] / 80, mosaic.shape[0] / 80 + 0.4), dpi=80)
    axes = figure.add_axes([0, 0, 1, mosaic.shape[0] / (mosaic.shape[0] + 32)])
    axes.imshow(mosaic, interpolation="nearest")
    axes.set_axis_off()
    for t, k in enumerate(shown):
        axes.text(pad + (t % per_row) * tile_w + 2, pad + (t // per_row) * tile_h + 9, f"{k}: {sizes[k]:,}", color="white", fontsize=7)
    which = "each cluster" if tiles == clusters else f"the {tiles} largest of {clusters} clusters"
    figure.suptitle(f"where {which} placed (log counts, squares of {HEAT_BIN} pixels) and its colors; cluster: users", fontsize=9)
    figure.savefig(path)
    plt.close(figure)
