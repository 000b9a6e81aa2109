"""Inference: a run is a function of its seed; one view at a time equals a plain sequential loop
written here; a group of views places exactly what placing them one after another would; the
start canvas (white, image, dataset), the color options, the outputs and the errors."""

from __future__ import annotations

import imageio.v2 as iio2
import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image

import rplacevit
from rplacevit.infer import Geometry, InferConfig, choose_views, infer, parse_color_weights, start_canvas
from rplacevit.models import ModelConfig, build_model, load_model, to_checkpoint
from rplacevit.render import to_rgb

PALETTE = np.array(rplacevit.PALETTE_RGB, dtype=np.uint8)
OUTSIDE, WHITE = rplacevit.OUTSIDE, rplacevit.WHITE


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Batches of one tiny window run slower on two threads than on one, and far slower when
    another process holds the second core: a spinning OpenMP thread waits for it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Tiny random-weight models saved as checkpoints: name → path. "color" and "time" have
    16-pixel windows; "time8" has an 8×8 centre; "color8" an 8-pixel window."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    configs = {
        "color": ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4),
        "time": ModelConfig.preset("tiny", "time", window=16, centre=4, patch=4),
        "time8": ModelConfig.preset("tiny", "time", window=16, centre=8, patch=4),
        "color8": ModelConfig.preset("tiny", "color", window=8, centre=4, patch=4),
        # Models that see more: ages (fed from the simulated clock), placer and users (unknown).
        "color_age": ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4, inputs=("color", "age")),
        "time_age": ModelConfig.preset("tiny", "time", window=16, centre=4, patch=4, inputs=("color", "age")),
        "time_bce": ModelConfig.preset("tiny", "time", window=16, centre=8, patch=4, inputs=("color", "age", "placer"),
                                       time_objective="bce"),
        "color_all": ModelConfig.preset("tiny", "color", window=8, centre=4, patch=4, inputs=("color", "age", "placer", "users")),
        # Models that see what each pixel showed before its last placement.
        "color_prev": ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4, inputs=("color", "age", "previous")),
        "time_prev": ModelConfig.preset("tiny", "time", window=16, centre=8, patch=4, inputs=("color", "previous")),
    }
    paths = {}
    for name, config in configs.items():
        paths[name] = folder / f"{name}.pt"
        torch.save(to_checkpoint(build_model(config)), paths[name])
    return paths


def window_of(canvas: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """(size, size) cells of the canvas from (top, left), OUTSIDE off the canvas."""
    padded = np.pad(canvas, size, constant_values=OUTSIDE)
    return padded[top + size : top + 2 * size, left + size : left + 2 * size]


def age_window(times: np.ndarray, top: int, left: int, size: int, clock: int) -> np.ndarray:
    """(size, size) age buckets at ``clock`` of the cells from (top, left) of a grid of last
    placement times (int64 min: never), written plainly: AGE_OUTSIDE off the canvas."""
    from test_history import plain_age_bucket

    out = np.empty((size, size), np.int64)
    for r in range(size):
        for c in range(size):
            y, x = top + r, left + c
            if not (0 <= y < times.shape[0] and 0 <= x < times.shape[1]):
                out[r, c] = rplacevit.history.AGE_OUTSIDE
            elif times[y, x] == np.iinfo(np.int64).min:
                out[r, c] = rplacevit.history.AGE_NEVER
            else:
                out[r, c] = plain_age_bucket(int(clock - times[y, x]))
    return out


def model_input(model, canvas, times, top, left, clock, previous=None):
    """What a model sees of the window from (top, left): the colors, and the ages and previous
    colors when it sees them."""
    side = model.config.window
    inputs = {"color": torch.from_numpy(window_of(canvas, top, left, side))[None]}
    if "age" in model.config.inputs:
        inputs["age"] = torch.from_numpy(age_window(times, top, left, side, clock))[None]
    if "previous" in model.config.inputs:
        inputs["previous"] = torch.from_numpy(window_of(previous, top, left, side))[None]
    return inputs


def reference(color_path, time_path, canvas, steps, seed, time_noise=0.1, temperature=0.0, weights=None,
              avoid_current=False, interval_ms=1000) -> np.ndarray:
    """The sequential algorithm, plainly, with infer's random draws (see rplacevit.infer): per
    step a view, the time model on the window around its grid, the pixel where prediction plus
    noise is smallest, the color model on the window centred on that pixel, the placement. Step
    p happens at (p + 1) · interval_ms on a start never placed on, for the models that see ages;
    a placement keeps the color it covers as its pixel's previous color (the start's own colors
    at first)."""
    color_model = load_model(color_path, expect_kind="color")
    time_model = None if time_path is None else load_model(time_path, expect_kind="time")
    rng = np.random.default_rng(seed)
    canvas = canvas.copy()
    height, width = canvas.shape
    times = np.full(canvas.shape, np.iinfo(np.int64).min)
    previous = canvas.copy()
    log_weights = torch.ones(32) if weights is None else torch.tensor(weights, dtype=torch.float32)
    log_weights = log_weights.log()
    with torch.no_grad():
        for step in range(steps):
            clock = (step + 1) * interval_ms
            if time_model is None:
                (y, x), = rng.integers(0, (height, width), size=(1, 2))
            else:
                grid, offset = time_model.config.centre, time_model.config.centre_start
                (top, left), = rng.integers(0, (height - grid + 1, width - grid + 1), size=(1, 2))
                seen = model_input(time_model, canvas, times, top - offset, left - offset, clock, previous)
                predicted = time_model.time_fraction(time_model(seen))
                if time_noise > 0:
                    predicted = predicted + torch.from_numpy(rng.random((1, grid, grid), dtype=np.float32) * np.float32(time_noise))
                cell = int(predicted.flatten().argmin())
                y, x = top + cell // grid, left + cell % grid
            side = color_model.config.window
            logits = color_model(model_input(color_model, canvas, times, y - side // 2, x - side // 2, clock, previous)).float()
            scores = (logits / temperature if temperature > 0 else logits) + log_weights
            if avoid_current:
                scores[0, canvas[y, x]] = -torch.inf
            if temperature > 0:
                scores = scores - torch.log(-torch.log(torch.from_numpy(rng.random((1, 32), dtype=np.float32))))
            previous[y, x], canvas[y, x] = canvas[y, x], int(scores.argmax())
            times[y, x] = clock
    return canvas


def replay(start: np.ndarray, placements: np.ndarray) -> np.ndarray:
    canvas = start.copy()
    for x, y, color in placements:
        canvas[y, x] = color
    return canvas


def run(checkpoints, color="color", time="time", **options):
    options = {"steps": 40, "progress": False, "device": "cpu", "pixel_choice": "views", **options}
    if "init" not in options and "dataset" not in options:
        options.setdefault("canvas_size", (40, 24))
    return infer(checkpoints[color], None if time is None else checkpoints[time], InferConfig(**options))


def test_same_seed_same_run_other_seed_other_run(checkpoints, tmp_path):
    pictures = []
    for name, seed in [("a", 3), ("b", 3), ("c", 4)]:
        run(checkpoints, seed=seed, batch_views=4, temperature=1.0, png=tmp_path / f"{name}.png")
        pictures.append(iio.imread(tmp_path / f"{name}.png"))
    np.testing.assert_array_equal(pictures[0], pictures[1])
    assert not np.array_equal(pictures[0], pictures[2])


@pytest.mark.parametrize(
    "time, options",
    [
        ("time", {}),
        ("time", {"time_noise": 0.0}),
        ("time8", {"temperature": 1.5, "color_weights": {27: 0.75, 3: 0.0}, "avoid_current": True}),
        (None, {"temperature": 0.7}),
        ("time_age", {"color": "color_age"}),
        ("time_bce", {"color": "color_all", "interval_ms": 70_000}),
        # A small canvas, so that pixels are placed on again and their previous colors matter.
        ("time_prev", {"color": "color_prev", "shape": (16, 20), "steps": 200}),
    ],
)
def test_one_view_at_a_time_equals_the_sequential_loop(checkpoints, time, options):
    options = dict(options)
    color, shape, steps = options.pop("color", "color"), options.pop("shape", (24, 40)), options.pop("steps", 60)
    start = np.random.default_rng(1).integers(0, 32, shape).astype(np.uint8)
    result = run(checkpoints, color=color, time=time, init=start, steps=steps, seed=7, batch_views=1, **options)
    weights = None
    if "color_weights" in options:
        weights = np.ones(32, np.float32)
        for index, weight in options["color_weights"].items():
            weights[index] = weight
    expected = reference(checkpoints[color], None if time is None else checkpoints[time], start, steps, 7,
                         time_noise=options.get("time_noise", 0.1), temperature=options.get("temperature", 0.0),
                         weights=weights, avoid_current=options.get("avoid_current", False),
                         interval_ms=options.get("interval_ms", 1000))
    np.testing.assert_array_equal(result.canvas, expected)
    assert (result.groups == 1).all()
    np.testing.assert_array_equal(replay(start, result.placements), result.canvas)


@pytest.mark.parametrize(("color", "time"), [("color", "time"), ("color", "time8"), ("color8", "time"), ("color", None),
                                             ("color_age", "time_age"), ("color_prev", "time_prev")])
def test_a_group_places_what_its_views_one_after_another_would(checkpoints, color, time):
    """Every window of a group reads the same cells on the canvas before the group as on the
    canvas where the group's earlier placements are already made: the models see the same
    input either way, so the group equals its placements made one at a time, in order."""
    start = np.random.default_rng(2).integers(0, 32, (48, 64)).astype(np.uint8)
    result = run(checkpoints, color=color, time=time, init=start, steps=150, batch_views=8, seed=5)
    color_config = load_model(checkpoints[color]).config
    time_config = None if time is None else load_model(checkpoints[time]).config
    geometry = Geometry.of(color_config, time_config)
    assert result.groups.max() > 1, "no group of several views: the test would prove nothing"
    canvas, first = start.copy(), 0
    for n in result.groups:
        before = canvas.copy()
        for k in range(first, first + n):
            (x, y, color_index), (top, left) = result.placements[k], result.views[k]
            assert top <= y < top + geometry.grid and left <= x < left + geometry.grid
            looks = [(top - geometry.time_offset, left - geometry.time_offset, geometry.time_window),
                     (y - geometry.color_window // 2, x - geometry.color_window // 2, geometry.color_window)]
            for window in looks:
                np.testing.assert_array_equal(window_of(canvas, *window), window_of(before, *window))
            canvas[y, x] = color_index
        first += n
    np.testing.assert_array_equal(canvas, result.canvas)


@pytest.mark.parametrize(("color", "time", "shape"), [("color_age", "time_age", (48, 64)), ("color_prev", "time_prev", (40, 40))])
def test_groups_of_age_models_place_what_the_sequential_loop_places_for_their_views(checkpoints, color, time, shape):
    """Without noise a placement is a function of its view, the canvas, the previous colors and
    the clock: redone one by one, each view at the clock of its own placement, a grouped run's
    placements come out the same (each view of a group sees its own moment, not the group's)."""
    start = np.random.default_rng(3).integers(0, 32, shape).astype(np.uint8)
    result = run(checkpoints, color=color, time=time, init=start, steps=300, batch_views=8, seed=2, time_noise=0.0,
                 interval_ms=2_500)
    assert result.groups.max() > 1 and result.interval_ms == 2_500
    color_model, time_model = load_model(checkpoints[color]), load_model(checkpoints[time])
    canvas, times, previous = start.copy(), np.full(start.shape, np.iinfo(np.int64).min), start.copy()
    grid, offset, side = time_model.config.centre, time_model.config.centre_start, color_model.config.window
    with torch.no_grad():
        for k, ((x, y, color_index), (top, left)) in enumerate(zip(result.placements, result.views)):
            clock = (k + 1) * 2_500
            seen = model_input(time_model, canvas, times, top - offset, left - offset, clock, previous)
            cell = int(time_model.time_fraction(time_model(seen)).flatten().argmin())
            assert (y, x) == (top + cell // grid, left + cell % grid), f"placement {k}"
            logits = color_model(model_input(color_model, canvas, times, y - side // 2, x - side // 2, clock, previous))
            assert color_index == int(logits.argmax()), f"placement {k}"
            previous[y, x], canvas[y, x], times[y, x] = canvas[y, x], color_index, clock
    np.testing.assert_array_equal(canvas, result.canvas)


def test_a_dataset_start_has_its_real_ages_previous_colors_and_the_mean_interval(checkpoints, sample_dataset):
    from rplacevit.infer import mean_interval, start_canvas, start_previous, start_times

    history = rplacevit.open(sample_dataset)
    at = history.time_range[0] + 6 * 3_600_000
    region = (250, 375, 378, 503)
    times, clock = start_times(sample_dataset, at, (128, 128), None, region)
    assert clock == at
    np.testing.assert_array_equal(times, history.placement_times_at(at)[375:503, 250:378])
    padded, _ = start_times(sample_dataset, at, (140, 100), (100, 140), region)
    np.testing.assert_array_equal(padded[:128], times[:, :100])
    assert (padded[128:] == np.iinfo(np.int64).min).all()
    ids = history.select(x0=250, y0=375, x1=378, y1=503)
    stamps = history.events()["timestamp"][ids]
    assert mean_interval(sample_dataset, region) == round((stamps[-1] - stamps[0]) / (len(ids) - 1))
    first, last = history.time_range
    assert mean_interval(sample_dataset, None) == round((last - first) / (len(history) - 1))
    result = run(checkpoints, color="color_age", time="time_age", dataset=sample_dataset, at=at, region=region, steps=30, batch_views=4)
    assert result.interval_ms == mean_interval(sample_dataset, region)
    assert run(checkpoints, steps=5).interval_ms is None  # no model sees ages: no clock
    # The previous colors: the dataset's, cut and padded (white: never placed on) like the canvas.
    start = start_canvas(None, sample_dataset, at, None, region)
    previous = start_previous(sample_dataset, at, start, None, region, None)
    np.testing.assert_array_equal(previous, history.previous_colors_at(at)[375:503, 250:378])
    assert (previous != start).any() and (previous == start).any()
    grown = start_previous(sample_dataset, at, start_canvas(None, sample_dataset, at, (100, 140), region), (100, 140), region, None)
    np.testing.assert_array_equal(grown[:128], previous[:, :100])
    assert (grown[128:] == rplacevit.WHITE).all()
    image = np.random.default_rng(0).integers(0, 32, (20, 30)).astype(np.uint8)
    np.testing.assert_array_equal(start_previous(None, None, image, None, None, None), image)  # never placed on: their own colors
    result = run(checkpoints, color="color_prev", time="time_prev", dataset=sample_dataset, at=at, region=region, steps=30, batch_views=4)
    assert len(result.placements) == 30


def test_views_are_separated_and_one_view_is_one_draw():
    rng = np.random.default_rng(0)
    for _ in range(20):
        views = choose_views(rng, 30, 100, 120, 16, 40)
        assert 1 <= len(views) <= 30
        assert ((views >= 0) & (views <= [100 - 16, 120 - 16])).all()
        distance = np.abs(views[:, None] - views[None]).max(axis=2)
        assert (distance[~np.eye(len(views), dtype=bool)] >= 40).all()
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    np.testing.assert_array_equal(choose_views(a, 1, 100, 120, 16, 40), b.integers(0, (85, 105), size=(1, 2)))


def test_video_and_gif_hold_one_frame_per_k_placements(checkpoints, tmp_path):
    """Frames after 0, 7, 14, …, 49 and 50 placements: 1 + ceil(50 / 7) = 9, each exactly the
    canvas after its number of placements, although groups of 3 straddle the frame counts."""
    outputs = {"video": tmp_path / "run.mp4", "gif": tmp_path / "run.gif", "png": tmp_path / "final.png"}
    result = run(checkpoints, steps=50, frame_every=7, batch_views=3, canvas_size=(33, 20), scale=2, **outputs)
    assert result.frames == 9
    reader = iio2.get_reader(outputs["video"])
    assert reader.count_frames() == 9
    assert reader.get_data(0).shape == (40, 66, 3)  # 66×40: both sides already even
    frames = iio.imread(outputs["gif"], index=None)
    counts = [0, 7, 14, 21, 28, 35, 42, 49, 50]
    expected = [to_rgb(replay(result.start, result.placements[:count]), None, 2) for count in counts]
    np.testing.assert_array_equal(frames[..., :3], np.stack(expected))
    np.testing.assert_array_equal(iio.imread(outputs["png"])[..., :3], to_rgb(result.canvas, None, 2))
    meta = reader.get_meta_data()
    assert meta["codec"] == "h264" and meta["fps"] == 30


def test_odd_sides_are_padded_in_the_video_only(checkpoints, tmp_path):
    result = run(checkpoints, steps=5, frame_every=5, canvas_size=(33, 17), video=tmp_path / "a.mp4", gif=tmp_path / "a.gif")
    assert result.frames == 2
    assert iio2.get_reader(tmp_path / "a.mp4").get_data(0).shape == (18, 34, 3)
    assert iio.imread(tmp_path / "a.gif", index=None).shape == (2, 17, 33, 3)


def test_changed_pixels_between_one_and_steps(checkpoints):
    for batch_views in (1, 16):
        result = run(checkpoints, steps=30, batch_views=batch_views, avoid_current=True)
        changed = np.count_nonzero(result.canvas != result.start)
        assert 1 <= changed <= 30
        assert len(result.placements) == 30 and result.groups.sum() == 30


def test_zero_weights_exclude_colors_and_avoid_current_never_repeats(checkpoints):
    start = np.random.default_rng(3).integers(0, 32, (24, 40)).astype(np.uint8)
    only = {index: 0.0 for index in range(32) if index not in (5, 12)}
    for time in ("time", None):
        result = run(checkpoints, time=time, init=start, color_weights=only, temperature=2.0, batch_views=4)
        assert set(result.placements[:, 2]) <= {5, 12}
        result = run(checkpoints, time=time, init=start, avoid_current=True, batch_views=4, steps=80)
        canvas = start.copy()
        for x, y, color in result.placements:
            assert canvas[y, x] != color
            canvas[y, x] = color


def test_image_start_is_the_nearest_palette_color(tmp_path):
    rgba = np.zeros((3, 5, 4), dtype=np.uint8)
    rgba[..., :3] = PALETTE[6]
    rgba[..., 3] = 255
    rgba[0, 0] = (250, 10, 10, 255)  # squared distance 3606 to #FF4500 (2), 5909 to #BE0039 (1)
    rgba[0, 1] = (0, 0, 0, 0)  # transparent: white, the blank canvas
    rgba[0, 2] = (0, 0, 0, 128)  # half-transparent black on white, (127, 127, 127): #898D90 (29)
    rgba[1, 0, :3] = PALETTE[13]
    path = tmp_path / "start.png"
    Image.fromarray(rgba, "RGBA").save(path)
    canvas = start_canvas(path)
    assert canvas.shape == (3, 5) and canvas.dtype == np.uint8
    assert (canvas[0, 0], canvas[0, 1], canvas[0, 2], canvas[1, 0], canvas[2, 4]) == (2, WHITE, 29, 13, 6)
    # Other modes, and crop or pad to a canvas size (padding is white).
    Image.fromarray(np.full((6, 4), 255, np.uint8), "L").save(tmp_path / "grey.jpg")
    assert (start_canvas(tmp_path / "grey.jpg") == WHITE).all()
    padded = start_canvas(path, canvas_size=(7, 2))
    assert padded.shape == (2, 7)
    np.testing.assert_array_equal(padded[:, :5], canvas[:2])
    assert (padded[:, 5:] == WHITE).all()
    assert (start_canvas(canvas_size=(9, 4)) == np.full((4, 9), WHITE)).all()
    np.testing.assert_array_equal(start_canvas(path, region=(1, 0, 4, 2)), canvas[0:2, 1:4])
    np.testing.assert_array_equal(start_canvas(path, region=(1, 0, 4, 2), canvas_size=(4, 1)), [[*canvas[0, 1:4], WHITE]])
    with pytest.raises(ValueError, match="a white start takes `canvas_size`"):
        start_canvas(region=(0, 0, 2, 2))


def test_image_start_through_infer(checkpoints, tmp_path):
    picture = PALETTE[np.random.default_rng(4).integers(0, 32, (30, 20))]
    Image.fromarray(picture).save(tmp_path / "start.png")
    result = run(checkpoints, init=tmp_path / "start.png", steps=3)
    assert (PALETTE[result.start] == picture).all()
    assert run(checkpoints, init=tmp_path / "start.png", canvas_size=(17, 16), steps=3).start.shape == (16, 17)


def test_dataset_start_is_the_real_canvas(checkpoints, sample_dataset):
    history = rplacevit.open(sample_dataset)
    first, last = history.time_range
    at = (first + last) // 2
    result = run(checkpoints, dataset=sample_dataset, at=at, steps=10, batch_views=4)
    assert result.start.shape == (history.canvas_height, history.canvas_width)
    np.testing.assert_array_equal(result.start, history.canvas_at(at))
    assert 1 <= np.count_nonzero(result.canvas != result.start) <= 10
    # A region cuts the art out of the 2000×2000 canvas: what the demo paints on.
    region = (250, 375, 378, 503)
    cut = run(checkpoints, dataset=sample_dataset, at=at, region=region, steps=10, batch_views=4)
    np.testing.assert_array_equal(cut.start, history.canvas_at(at)[375:503, 250:378])
    assert 1 <= np.count_nonzero(cut.canvas != cut.start) <= 10
    with pytest.raises(ValueError, match="`region` 1990,0,2010,20 is not inside the 2000x2000 start canvas"):
        run(checkpoints, dataset=sample_dataset, at=at, region=(1990, 0, 2010, 20))


def test_errors_say_what_is_wrong(checkpoints, tmp_path):
    with pytest.raises(ValueError, match="is a time model checkpoint, a color model is expected"):
        run(checkpoints, color="time")
    with pytest.raises(ValueError, match="is a color model checkpoint, a time model is expected"):
        run(checkpoints, time="color")
    with pytest.raises(FileNotFoundError):
        infer(tmp_path / "missing.pt", None, InferConfig(steps=1, progress=False))
    not_a_checkpoint = tmp_path / "notes.pt"
    not_a_checkpoint.write_text("hello")
    with pytest.raises(ValueError, match="is not an rplacevit checkpoint"):
        infer(not_a_checkpoint, None, InferConfig(steps=1, progress=False))
    not_an_image = tmp_path / "picture.png"
    not_an_image.write_text("not a picture")
    with pytest.raises(ValueError, match=f"{not_an_image} is not a readable image"):
        run(checkpoints, init=not_an_image)
    with pytest.raises(ValueError, match="the canvas is 15x40 pixels, smaller than the models' 16x16 window"):
        run(checkpoints, canvas_size=(15, 40))
    with pytest.raises(ValueError, match="leave 1 color"):
        run(checkpoints, color_weights={index: 0.0 for index in range(31)}, avoid_current=True)
    with pytest.raises(ValueError, match="palette indices are 0..31"):
        run(checkpoints, color_weights={32: 1.0})
    with pytest.raises(ValueError, match="not both"):
        run(checkpoints, init=tmp_path / "x.png", dataset=tmp_path, at=0)
    with pytest.raises(ValueError, match="batch_views"):
        run(checkpoints, batch_views=0)
    with pytest.raises(ValueError, match="png` .*out.txt: expected a .png file"):
        run(checkpoints, png=tmp_path / "out.txt")
    assert not list(tmp_path.glob("*.partial-*"))


def test_model_objects_run_like_their_checkpoints(checkpoints, tmp_path):
    models = [load_model(checkpoints[name]) for name in ("color", "time")]
    from_files = run(checkpoints, seed=2, batch_views=3, steps=20)
    from_objects = infer(*models, InferConfig(steps=20, canvas_size=(40, 24), seed=2, batch_views=3, device="cpu", progress=False,
                                              pixel_choice="views"))
    np.testing.assert_array_equal(from_files.canvas, from_objects.canvas)
    with pytest.raises(ValueError, match="a time model is expected, not ColorModel"):
        infer(models[0], models[0], InferConfig(steps=1, progress=False))
    # No placement at all: the start canvas is the only frame.
    result = run(checkpoints, steps=0, video=tmp_path / "still.mp4", png=tmp_path / "still.png")
    assert result.frames == 1 and iio2.get_reader(tmp_path / "still.mp4").count_frames() == 1
    assert (iio.imread(tmp_path / "still.png")[..., :3] == PALETTE[WHITE]).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is there")
def test_cuda_without_a_gpu_is_a_clear_error(checkpoints):
    with pytest.raises(ValueError, match="no CUDA device is available"):
        run(checkpoints, device="cuda")


def test_parse_color_weights():
    assert parse_color_weights("27=0.75, 31=0") == {27: 0.75, 31: 0.0}
    assert parse_color_weights("") == {}
    with pytest.raises(ValueError, match="index=weight"):
        parse_color_weights("27:0.75")


def test_infer_command_line(tmp_path):
    import subprocess
    import sys

    from rplacevit.models import ModelConfig, build_model, to_checkpoint

    torch.manual_seed(0)
    checkpoint = tmp_path / "color.pt"
    torch.save(to_checkpoint(build_model(ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4))), checkpoint)
    command = [sys.executable, "-m", "rplacevit", "infer", "--color-model", str(checkpoint), "--random-pixel",
               "--canvas-size", "32", "32", "--steps", "20", "--frame-every", "10", "-o", str(tmp_path / "a.mp4"),
               "--png", str(tmp_path / "a.png")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "placed 20 pixels" in result.stdout and (tmp_path / "a.png").exists()
    missing = subprocess.run(command[:6] + ["--steps", "5", "-o", str(tmp_path / "b.mp4")], capture_output=True, text=True)
    assert missing.returncode == 2 and "--random-pixel" in missing.stderr  # a usage error


def test_progress_bar_counts_placements(checkpoints, capsys):
    run(checkpoints, steps=30, batch_views=4, progress=True)
    drawn = capsys.readouterr().err
    assert "30/30" in drawn and "placement/s" in drawn


def test_default_start_is_a_white_256_square(checkpoints):
    result = infer(checkpoints["color"], checkpoints["time"], InferConfig(steps=0, device="cpu", progress=False))
    assert result.start.shape == (256, 256) and (result.start == WHITE).all()


def test_one_forward_pass_per_model_and_group(checkpoints):
    color, timer = load_model(checkpoints["color"]), load_model(checkpoints["time"])
    calls = {"color": 0, "time": 0}
    for name, model in (("color", color), ("time", timer)):
        forward = model.forward

        def counted(windows, name=name, forward=forward):
            calls[name] += 1
            return forward(windows)

        model.forward = counted
    result = infer(color, timer, InferConfig(steps=200, batch_views=8, canvas_size=(128, 128), device="cpu", progress=False,
                                             pixel_choice="views"))
    assert len(result.groups) < 200 and result.groups.max() > 1  # the groups really hold several views
    assert calls == {"color": len(result.groups), "time": len(result.groups)}


def test_command_line_options_reach_the_function(checkpoints, tmp_path):
    """Every painting option through the command line gives the canvas the function gives."""
    import subprocess
    import sys

    picture = PALETTE[np.random.default_rng(8).integers(0, 32, (40, 48))]
    Image.fromarray(picture).save(tmp_path / "start.png")
    options = dict(init=tmp_path / "start.png", region=(2, 3, 46, 39), steps=60, batch_views=4, temperature=0.7,
                   time_noise=0.3, color_weights={27: 0.5, 31: 0.0}, avoid_current=True, seed=11, frame_every=20)
    expected = infer(checkpoints["color"], checkpoints["time"], InferConfig(device="cpu", progress=False, **options))
    command = [sys.executable, "-m", "rplacevit", "infer", "--color-model", str(checkpoints["color"]), "--time-model",
               str(checkpoints["time"]), "--init", str(tmp_path / "start.png"), "--region", "2,3,46,39", "--steps", "60",
               "--batch-views", "4", "--temperature", "0.7", "--time-noise", "0.3", "--color-weights", "27=0.5,31=0",
               "--avoid-current", "--seed", "11", "--frame-every", "20", "--fps", "12", "--device", "cpu",
               "-o", str(tmp_path / "a.mp4"), "--gif", str(tmp_path / "a.gif"), "--png", str(tmp_path / "a.png")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(iio.imread(tmp_path / "a.png")[..., :3], to_rgb(expected.canvas))
    assert len(iio.imread(tmp_path / "a.gif", index=None)) == 4
    assert iio2.get_reader(tmp_path / "a.mp4").get_meta_data()["fps"] == 12


def test_a_run_that_fails_midway_leaves_no_output(checkpoints, tmp_path):
    color = load_model(checkpoints["color"])
    forward, calls = color.forward, []

    def failing(windows):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("the device went away")
        return forward(windows)

    color.forward = failing
    outputs = {"video": tmp_path / "a.mp4", "gif": tmp_path / "a.gif", "png": tmp_path / "a.png"}
    with pytest.raises(RuntimeError, match="went away"):
        infer(color, checkpoints["time"], InferConfig(steps=40, frame_every=1, canvas_size=(40, 24), device="cpu", progress=False,
                                                      pixel_choice="views", **outputs))
    assert len(calls) == 3 and list(tmp_path.iterdir()) == []
