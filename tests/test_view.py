"""rplacevit view: every API answer against a plain computation from the events (canvas PNGs,
pixel histories, heat, users, the models' overlays) or the painter (the forecast), 400s that
name the parameter and 500s of the same shape, nothing served outside the page's folder, only
its own Host names, a real server under concurrent clients (a fixed pool of answering threads)
and under connections that send nothing (closed, counted), the command line (port 0, SIGTERM,
the warning off loopback, no empty host, a flood of connections), and a real browser (headless
Chromium) that moves the slider, clicks a pixel and draws exactly the reader's canvas, or the
forecast in its place."""

from __future__ import annotations

import contextlib
import http.client
import io
import json
import os
import resource
import select
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rplacevit
with warnings.catch_warnings():  # starlette would rather its test client ran on httpx2, a fork of httpx
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from conftest import replay
from rplacevit.forecast import ForecastConfig
from rplacevit.history import AGE_NEVER, AGE_OUTSIDE
from rplacevit.infer import InferConfig, infer
from rplacevit.models import ModelConfig, age_bucket, build_model, load_model, to_checkpoint
from rplacevit.times import LATEST_MS, format_time
from rplacevit.view import CONCURRENT_ANSWERS, LOOPBACK_NAMES, MAX_USER_PLACEMENTS, STATIC, Viewer, create_app, listen
from rplacevit.view import server as http_server

SAMPLE_REGION = (250, 375, 378, 503)
#: How far ahead the viewer forecasts: rplacevit forecast's default horizon, 30 minutes.
HORIZON = 30 * 60_000
#: Events per page of a pixel's history here: the busiest pixels of the sample have a few dozen.
PAGE = 10
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """Tiny untrained models (seeded): the overlays' geometry and ranges, not their skill."""
    folder = tmp_path_factory.mktemp("view-models")
    torch.manual_seed(0)
    configs = {"color": ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4, inputs=("color", "age", "previous")),
               "time": ModelConfig.preset("tiny", "time", window=16, centre=8, patch=4, inputs=("color", "age", "previous"))}
    paths = {}
    for kind, config in configs.items():
        paths[kind] = folder / f"{kind}.pt"
        torch.save(to_checkpoint(build_model(config)), paths[kind])
    return paths


@pytest.fixture(scope="module")
def viewer(sample_dataset, models) -> Viewer:
    return Viewer(sample_dataset, models["color"], models["time"], device="cpu", page_size=PAGE)


@pytest.fixture(scope="module")
def client(viewer) -> TestClient:
    return TestClient(create_app(viewer))


@pytest.fixture(scope="module")
def moments(sample_dataset) -> list[int]:
    first, last = rplacevit.open(sample_dataset).time_range
    return [first - 1, first, first + 3_600_000 + 17, (first + last) // 2, last]


def decode(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    return np.array(Image.open(io.BytesIO(response.content)).convert("RGB"))


def grey(response) -> np.ndarray:
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "L"
    return np.array(image)


def test_info_describes_the_dataset_and_the_models(client, sample_dataset):
    info = client.get("/api/info").json()
    history = rplacevit.open(sample_dataset)
    assert (info["width"], info["height"], info["events"], info["users"]) == (2000, 2000, len(history), history.users)
    assert (info["first_ms"], info["last_ms"]) == history.time_range and info["palette"] == history.palette
    assert info["bounds"] == list(SAMPLE_REGION)
    assert info["models"]["color"]["window"] == 16 and info["models"]["time"]["centre"] == 8
    assert info["forecast"] == {"horizon_ms": HORIZON}


def test_canvas_png_is_exactly_the_canvas_at_the_moment(client, sample_dataset, sample_events, moments):
    history = rplacevit.open(sample_dataset)
    palette = np.array(history.palette_rgb, np.uint8)
    for t in moments:
        expected = palette[history.canvas_at(t)]
        np.testing.assert_array_equal(decode(client.get(f"/api/canvas.png?t={t}")), expected)
        for x0, y0, x1, y1 in [SAMPLE_REGION, (0, 0, 17, 5), (1990, 1999, 2000, 2000), (301, 402, 333, 459)]:
            np.testing.assert_array_equal(decode(client.get(f"/api/canvas.png?t={t}&region={x0},{y0},{x1},{y1}")),
                                          expected[y0:y1, x0:x1])
    # The replay of the events, plainly, and ISO times; a region reaching off the canvas is clipped.
    t = moments[2]
    count = int(np.searchsorted(sample_events[:, 1], t, side="right"))
    plain = palette[replay(sample_events, count)]
    np.testing.assert_array_equal(decode(client.get(f"/api/canvas.png?t={rplacevit.times.format_time(t)}&region=-50,-50,1000,900")),
                                  plain[:900, :1000])
    scaled = decode(client.get(f"/api/canvas.png?t={t}&region=300,400,310,404&scale=3"))
    np.testing.assert_array_equal(scaled, np.repeat(np.repeat(plain[400:404, 300:310], 3, 0), 3, 1))
    np.testing.assert_array_equal(decode(client.get("/api/canvas.png")), palette[history.canvas_at(history.time_range[1])])


def test_pixel_history_is_every_event_at_the_pixel_paged(client, sample_events):
    keys = sample_events[:, 5] * 2000 + sample_events[:, 4]
    busiest = int(np.bincount(keys).argmax())
    pixels = [(busiest % 2000, busiest // 2000), (320, 430), (0, 0)]
    for x, y in pixels:
        mine = sample_events[(sample_events[:, 4] == x) & (sample_events[:, 5] == y)]
        first = client.get(f"/api/pixel?x={x}&y={y}").json()
        assert first["total"] == len(mine) and first["pages"] == max(1, -(-len(mine) // PAGE))
        listed = [event for page in range(first["pages"]) for event in client.get(f"/api/pixel?x={x}&y={y}&page={page}").json()["events"]]
        assert [(e["id"], e["t"], e["user"], e["color"]) for e in listed] == [tuple(row[:4]) for row in mine.tolist()]
        assert [e["lasted_ms"] for e in listed] == [*np.diff(mine[:, 1]).tolist(), None][: len(mine)]
    x, y = pixels[0]
    mine = sample_events[(sample_events[:, 4] == x) & (sample_events[:, 5] == y)]
    assert len(mine) > PAGE, "the busiest pixel of the sample needs more than one page"
    # Without a page, the page of the event in effect at t, and which one it is.
    for k in (0, PAGE + 3, len(mine) - 1):
        at = client.get(f"/api/pixel?x={x}&y={y}&t={mine[k, 1]}").json()
        assert at["current"] == int(np.searchsorted(mine[:, 1], mine[k, 1], side="right")) - 1
        assert at["page"] == at["current"] // PAGE
    assert client.get(f"/api/pixel?x={x}&y={y}&t={mine[0, 1] - 1}").json()["current"] is None


def test_heat_counts_the_events_per_pixel_in_the_interval(client, sample_events, moments):
    first = moments[1]
    for t0, t1, (x0, y0, x1, y1) in [(first, first + 3_600_000, SAMPLE_REGION), (first + 5 * 3_600_000, first + 5 * 3_600_000 + 60_000,
                                                                                 (300, 400, 360, 460)), (0, 2**42, (0, 0, 2000, 2000))]:
        response = client.get(f"/api/heat.png?t0={t0}&t1={t1}&region={x0},{y0},{x1},{y1}")
        inside = ((sample_events[:, 1] >= t0) & (sample_events[:, 1] < t1) & (sample_events[:, 4] >= x0) & (sample_events[:, 4] < x1)
                  & (sample_events[:, 5] >= y0) & (sample_events[:, 5] < y1))
        counts = np.zeros((y1 - y0, x1 - x0), np.int64)
        np.add.at(counts, (sample_events[inside, 5] - y0, sample_events[inside, 4] - x0), 1)
        np.testing.assert_array_equal(grey(response), np.minimum(counts, 255))
        assert int(response.headers["X-Heat-Max"]) == counts.max()


def test_user_lists_the_users_placements(client, sample_dataset, sample_events):
    history = rplacevit.open(sample_dataset)
    for user in (0, 6, history.users - 1):  # 6 has 26,087 placements: listed in part
        mine = sample_events[sample_events[:, 2] == user]
        answer = client.get(f"/api/user?id={user}").json()
        assert answer["count"] == len(mine) and answer["truncated"] == (len(mine) > MAX_USER_PLACEMENTS)
        assert answer["placements"] == mine[:MAX_USER_PLACEMENTS, [4, 5, 1, 3]].tolist()
        assert client.get("/api/user", params={"id": answer["hash"]}).json()["id"] == user


@pytest.mark.parametrize("url, parameter", [
    ("/api/canvas.png?t=yesterday", "t"), ("/api/canvas.png?region=1,2,3", "region"), ("/api/canvas.png?region=5000,0,5010,10", "region"),
    ("/api/canvas.png?scale=0", "scale"), ("/api/canvas.png?scale=4", "region"), ("/api/canvas.png?tt=1", "tt"),
    ("/api/pixel?x=2000&y=0", "x"), ("/api/pixel?x=1&y=-1", "y"), ("/api/pixel?x=1", "y"), ("/api/pixel?x=1&y=1&page=1", "page"),
    ("/api/pixel?x=a&y=1", "x"), ("/api/heat.png?t0=0", "t1"), ("/api/heat.png?t0=10&t1=5", "t1"), ("/api/user?id=", "id"),
    ("/api/user?id=99999999", "id"), ("/api/user?id=nohash", "id"), ("/api/predict?x=1&y=1", "t"),
    ("/api/predict.png?t=0", "region"), ("/api/predict.png?t=0&region=0,0,600,600", "region"),
    ("/api/forecast.png?region=300,400,364,464", "t"), ("/api/forecast.png?t=soon&region=300,400,364,464", "t"),
    (f"/api/forecast.png?t={LATEST_MS - 1000}&region=300,400,364,464", "t"), ("/api/forecast.png?t=0", "region"),
    ("/api/forecast.png?t=0&region=0,0,600,600", "region"), ("/api/forecast.png?t=0&region=0,0,15,64", "region"),
    ("/api/forecast.png?t=0&region=5000,0,5064,64", "region"), ("/api/forecast.png?t=0&region=0,0,64", "region"),
    ("/api/forecast.png?t=0&region=0,0,64,64&scale=2", "scale"),
    # Hostile: digits Python's int() refuses, numbers beyond int64, what isdigit() takes for digits, NaN, unicode.
    ("/api/user?id=%C2%B2", "id"), ("/api/user?id=" + "9" * 5000, "id"), ("/api/canvas.png?t=" + "9" * 5000, "t"),
    ("/api/pixel?x=" + "9" * 5000 + "&y=1", "x"), ("/api/pixel?x=99999999999999999999999&y=1", "x"), ("/api/pixel?x=nan&y=1", "x"),
    ("/api/canvas.png?region=0,0,1e3,10", "region"), ("/api/canvas.png?region=%E2%91%A0,0,5,5", "region"),
    ("/api/heat.png?t0=-" + "9" * 30 + "&t1=5", "t0"), ("/api/canvas.png?scale=" + "9" * 5000, "scale"), ("/api/canvas.png?t=x" + "9" * 5000, "t"), ("/api/canvas.png?region=" + "1," * 3000, "region"),
])
def test_bad_parameters_are_400s_naming_the_parameter(client, url, parameter):
    response = client.get(url)
    assert response.status_code == 400, url
    body = response.json()
    assert body["parameter"] == parameter and body["error"].startswith(parameter), body
    assert len(body["error"]) < 200, body  # a hostile value is quoted cut, never whole


def canvas_state_oracle(history, t: int, box):
    """Colors, age buckets and previous colors of the rectangle ``box`` at ``t``, plainly:
    OUTSIDE off the canvas open at t; ages of the last placement at each pixel, and the color
    of the placement before it (white if none), from the events."""
    x0, y0, x1, y1 = box
    colors = np.full((y1 - y0, x1 - x0), rplacevit.OUTSIDE, np.uint8)
    ages = np.full(colors.shape, AGE_OUTSIDE, np.int64)
    previous = colors.copy()
    ox0, oy0, ox1, oy1 = history.canvas_bounds_at(t)
    canvas = history.canvas_at(t)
    columns = history.events()
    last = np.full(canvas.shape, np.iinfo(np.int64).min)
    done = columns["timestamp"] <= t
    np.maximum.at(last, (columns["y"][done], columns["x"][done]), columns["timestamp"][done])
    in_box = done & (columns["x"] >= x0) & (columns["x"] < x1) & (columns["y"] >= y0) & (columns["y"] < y1)
    xs, ys, near = columns["x"][in_box], columns["y"][in_box], columns["color"][in_box]  # in id order
    for y in range(max(y0, oy0), min(y1, oy1)):
        for x in range(max(x0, ox0), min(x1, ox1)):
            colors[y - y0, x - x0] = canvas[y, x]
            never = last[y, x] == np.iinfo(np.int64).min
            ages[y - y0, x - x0] = AGE_NEVER if never else age_bucket(torch.tensor(t - last[y, x])).item()
            here = near[(xs == x) & (ys == y)]
            previous[y - y0, x - x0] = here[-2] if len(here) > 1 else history.white
    return {"color": torch.from_numpy(colors)[None], "age": torch.from_numpy(ages)[None], "previous": torch.from_numpy(previous)[None]}


def test_color_predictions_are_the_model_on_the_window_at_the_moment(client, viewer, models, sample_dataset, sample_events):
    history = rplacevit.open(sample_dataset)
    model = load_model(models["color"])
    t = sample_events[len(sample_events) // 2, 1]
    for x, y in [(320, 430), (250, 375), (999, 2)]:  # 999: half the window lies past the canvas open in the sample's hours
        answer = client.get(f"/api/predict?x={x}&y={y}&t={t}").json()
        with torch.no_grad():
            probabilities = torch.softmax(model(canvas_state_oracle(history, t, (x - 8, y - 8, x + 8, y + 8)))[0], 0)
        top = torch.argsort(probabilities, descending=True, stable=True)[:3]
        assert [c["color"] for c in answer["colors"]] == top.tolist()
        np.testing.assert_allclose([c["p"] for c in answer["colors"]], probabilities[top].numpy(), rtol=1e-5)
        later = sample_events[(sample_events[:, 4] == x) & (sample_events[:, 5] == y) & (sample_events[:, 1] > t)]
        assert answer["next"] == (None if len(later) == 0 else {**answer["next"], "id": int(later[0, 0]), "color": int(later[0, 3]),
                                                                 "t": int(later[0, 1]), "user": int(later[0, 2])})
        assert 0 <= answer["time"]["score"] <= 1 and answer["time"]["objective"] == "mse"


def test_changes_soon_map_is_the_time_model_on_the_squares_of_the_region(client, models, sample_dataset, sample_events):
    history = rplacevit.open(sample_dataset)
    model = load_model(models["time"])
    t = sample_events[len(sample_events) // 3, 1]
    for x0, y0, x1, y1 in [(300, 400, 340, 433), (293, 405, 311, 419), (990, 10, 1010, 30)]:  # the last straddles the open canvas
        soon = grey(client.get(f"/api/predict.png?t={t}&region={x0},{y0},{x1},{y1}"))
        assert soon.shape == (y1 - y0, x1 - x0)
        # The canvas is cut in 8×8 squares from (0, 0), whatever the region; square (sy, sx) is
        # the centre of the window whose top-left is 4 cells up and left of it.
        expected = np.zeros(soon.shape, np.uint8)
        for sy in range(y0 // 8 * 8, y1, 8):
            for sx in range(x0 // 8 * 8, x1, 8):
                with torch.no_grad():
                    fraction = model(canvas_state_oracle(history, t, (sx - 4, sy - 4, sx + 12, sy + 12)))[0].numpy()
                full = np.rint((1 - fraction) * 255).astype(np.uint8)
                rows, cols = slice(max(sy, y0), min(sy + 8, y1)), slice(max(sx, x0), min(sx + 8, x1))
                expected[rows.start - y0:rows.stop - y0, cols.start - x0:cols.stop - x0] = \
                    full[rows.start - sy:rows.stop - sy, cols.start - sx:cols.stop - sx]
        expected[:, max(0, 1000 - x0):] = 0  # not open in the sample's hours
        assert np.abs(soon.astype(int) - expected).max() <= 1  # float32 batches of different sizes
        assert (soon[:, max(0, 1000 - x0):] == 0).all()
        # The score /api/predict gives for a pixel is the one on the map.
        for x, y in [(x0, y0), (x1 - 1, y1 - 1), ((x0 + x1) // 2, (y0 + y1) // 2)]:
            if x < 1000:
                score = client.get(f"/api/predict?x={x}&y={y}&t={t}").json()["time"]["score"]
                assert abs(round((1 - score) * 255) - int(soon[y - y0, x - x0])) <= 1, (x, y)


def palette_indices(response) -> np.ndarray:
    """The palette indices of a palette PNG."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "P"
    return np.array(image)


def painted(viewer, sample_dataset, t: int, region, steps: int) -> np.ndarray:
    """What ``rplacevit forecast``'s ``model`` forecaster paints for ``region`` from ``t``, with
    its default refresh (None: one map for the whole horizon)."""
    config = InferConfig(steps=steps, dataset=os.fspath(sample_dataset), at=t, region=region, pixel_choice="map",
                         refresh=ForecastConfig.refresh or max(steps, 1), time_noise=0.0,
                         interval_ms=max(1, HORIZON // max(steps, 1)), progress=False, device="cpu")
    return infer(viewer.models["color"], viewer.models["time"], config).canvas


def test_the_forecast_is_the_map_painters_canvas_one_horizon_ahead(client, viewer, sample_dataset, sample_events):
    history = rplacevit.open(sample_dataset)
    first, last = history.time_range
    region = (300, 400, 364, 464)
    x0, y0, x1, y1 = region
    here = (sample_events[:, 4] >= x0) & (sample_events[:, 4] < x1) & (sample_events[:, 5] >= y0) & (sample_events[:, 5] < y1)
    # Inside the data: as many placements as events in (t, t + 30 min]; at its end, as many as in
    # the 30 minutes before t (the data holds no next ones), which the header says.
    for t, counted in [(int(sample_events[len(sample_events) // 2, 1]), "next"), (first, "next"), (last - 10 * 60_000, "previous"),
                       (last + 5 * HORIZON, "previous")]:
        lo, hi = (t, t + HORIZON) if counted == "next" else (t - HORIZON, t)
        n = int((here & (sample_events[:, 1] > lo) & (sample_events[:, 1] <= hi)).sum())
        response = client.get(f"/api/forecast.png?t={format_time(t)}&region={x0},{y0},{x1},{y1}")
        forecast = palette_indices(response)
        assert response.headers["X-Forecast-To"] == format_time(t + HORIZON)
        assert response.headers["X-Forecast-Placements"] == f"{n}; counted={counted}"
        assert Image.open(io.BytesIO(response.content)).getpalette()[:3 * len(history.palette)] == list(
            np.array(history.palette_rgb, np.uint8).ravel())
        np.testing.assert_array_equal(forecast, painted(viewer, sample_dataset, t, region, n))
        # The painter's own rule, plainly: from the real canvas at t, at most n pixels changed.
        changed = forecast != history.canvas_at(t, region)
        assert 0 < changed.sum() <= n if n else not changed.any()


def test_forecasts_are_cached_per_moment_and_region(client, viewer, sample_events):
    t = int(sample_events[len(sample_events) // 4, 1])
    url = f"/api/forecast.png?t={t}&region=256,384,320,448"
    before = viewer.forecast_canvas.cache_info()
    once, twice = client.get(url), client.get(url)
    after = viewer.forecast_canvas.cache_info()
    assert once.status_code == 200 and twice.content == once.content and twice.headers == once.headers
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    assert once.headers["Cache-Control"] == "max-age=3600"
    # The same moment written otherwise is the same forecast.
    assert client.get(f"/api/forecast.png?t={format_time(t)}&region=256,384,320,448").content == once.content
    assert viewer.forecast_canvas.cache_info().hits == after.hits + 1


def test_the_forecast_needs_a_pixel_open_where_events_come(client, viewer, sample_events, monkeypatch):
    """Events to come in a region none of whose pixels is open at t: nothing can be painted."""
    t = int(sample_events[len(sample_events) // 2, 1])
    monkeypatch.setattr(viewer.history, "canvas_bounds_at", lambda t_ms: (0, 0, 100, 100))
    response = client.get(f"/api/forecast.png?t={t}&region=320,420,384,484")  # not cached: a forecast of earlier tests
    assert response.status_code == 400 and response.json()["parameter"] == "region" and "open" in response.json()["error"]


def test_overlays_need_their_models(sample_dataset, models):
    bare = TestClient(create_app(Viewer(sample_dataset)))
    assert bare.get("/api/info").json()["models"] == {} and bare.get("/api/info").json()["forecast"] is None
    for url in ("/api/predict?x=1&y=1&t=0", "/api/predict.png?t=0&region=0,0,16,16", "/api/forecast.png?t=0&region=0,0,64,64"):
        response = bare.get(url)
        assert response.status_code == 400 and response.json()["parameter"] is None and "--" in response.json()["error"]
    # The forecast paints with both: each alone is named as the one missing.
    for given, missing in (({"color_model": models["color"]}, "time"), ({"time_model": models["time"]}, "color")):
        half = TestClient(create_app(Viewer(sample_dataset, device="cpu", **given)))
        assert half.get("/api/info").json()["forecast"] is None
        response = half.get("/api/forecast.png?t=0&region=0,0,64,64")
        assert response.status_code == 400 and response.json() == {
            "error": f"no {missing} model: start the viewer with --{missing}-model CKPT", "parameter": None}


def test_the_page_has_the_forecast_toggle_when_both_models_are_loaded():
    """Beside "changes soon", hidden until /api/info says there is a forecast; the page asks
    /api/forecast.png for the visible region from the moment the toggle was turned on."""
    html = (STATIC / "index.html").read_text()
    script = (STATIC / "viewer.js").read_text()
    assert html.index('id="soon-label"') < html.index('id="forecast-label" hidden') < html.index('id="status"')
    assert 'id="forecast" type="checkbox"' in html and 'id="forecast-note" hidden' in html and 'id="forecast-flip"' in html
    assert '$("forecast-label").hidden = !info.forecast;' in script
    assert "url: `/api/forecast.png?${q}`" in script and "const q = `t=${f.from}&region=${region.join(\",\")}`;" in script
    assert "`forecast for ${isoTime(f.to)}" in script and "viewer.info.limits.predict_pixels" in script
    assert "http://" not in script and "https://" not in script and "import " not in script


def test_a_model_of_another_palette_is_refused(sample_dataset, tmp_path):
    config = ModelConfig.preset("tiny", "color", window=16, centre=4, patch=4, palette=tuple(rplacevit.PALETTE_HEX[:16]))
    torch.save(to_checkpoint(build_model(config)), tmp_path / "m.pt")
    with pytest.raises(ValueError, match="palette"):
        Viewer(sample_dataset, tmp_path / "m.pt")


# A real server ------------------------------------------------------------------------------


@contextlib.contextmanager
def serving(app, **limits):
    """``app`` on the command's uvicorn server (rplacevit.view.server, given ``limits``) in a
    thread, on a free loopback port: yields the port."""
    sock = listen("127.0.0.1", 0)
    running = http_server(app, **limits)
    thread = threading.Thread(target=running.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not running.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        running.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture(scope="module")
def server(viewer):
    """The app in a thread, on a free loopback port, answering loopback names only."""
    with serving(create_app(viewer, LOOPBACK_NAMES)) as port:
        yield port


def raw_get(port: int, path: str, method: str = "GET", host: str = "127.0.0.1",
            hosts: tuple[str, ...] | None = None) -> tuple[int, bytes]:
    """One request with ``path`` sent exactly as written (no client normalises it); its Host
    header ``host``:``port``, or each of ``hosts`` exactly as written."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    for value in (f"{host}:{port}",) if hosts is None else hosts:
        connection.putheader("Host", value)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


def status_of(port: int) -> int | None:
    """The status of /api/info (None: no answer)."""
    try:
        return raw_get(port, "/api/info")[0]
    except (OSError, http.client.HTTPException):
        return None


def test_nothing_outside_the_page_folder_is_served(server):
    package = (STATIC.parent / "view.py").read_bytes()
    secret = (ROOT / "pyproject.toml").read_bytes()
    attempts = ["/../view.py", "/..%2fview.py", "/%2e%2e/view.py", "/%2e%2e%2fview.py", "/viewer.js/../../view.py", "//etc/passwd",
                "/....//view.py", "/%252e%252e/view.py", "/..\\view.py", "/../../../pyproject.toml", "/api/../../view.py",
                "/.%2e/.%2e/.%2e/pyproject.toml", "/%00../view.py", "/index.html%00.py"]
    for path in attempts:
        status, body = raw_get(server, path)
        assert status in (400, 404), (path, status)
        assert package[:200] not in body and secret[:200] not in body and b"root:" not in body, path
    status, body = raw_get(server, "/")
    assert status == 200 and b"viewer.js" in body
    assert raw_get(server, "/viewer.js")[1] == (STATIC / "viewer.js").read_bytes()


def test_the_server_only_reads_and_only_answers_its_own_names(server):
    for method in ("POST", "PUT", "DELETE", "PATCH"):
        for path in ("/api/info", "/api/canvas.png", "/index.html"):
            assert raw_get(server, path, method)[0] == 405, (method, path)
    for host in ("attacker.example", "127.0.0.1.attacker.example", "localhost.", "[::2]", ""):
        assert raw_get(server, "/api/info", host=host)[0] == 400, host
    for host in ("localhost", "LOCALHOST", "[::1]", "127.0.0.1"):
        assert raw_get(server, "/api/info", host=host)[0] == 200, host


@pytest.mark.parametrize("hosts", [
    # What a lenient URL parser reads as localhost (issue 29): a user, a path, junk after the brackets, a port not a number.
    ("evil.com@localhost",), ("localhost/evil",), ("[::1]evil",), ("localhost:abc",), ("localhost@evil.com:80",),
    ("localhost:0",), ("localhost:65536",), ("localhost:",), ("[::1",), ("::1",), ("[localhost]",), ("localhost:80:80",),
    ("localhost#evil",), ("localhost?",), ("localhost\\evil",), ("127.0.0.1:\xb2",), (), ("localhost", "evil.com"),
])
def test_the_host_header_is_parsed_strictly(server, hosts):
    assert raw_get(server, "/api/info", hosts=hosts)[0] == 400, hosts


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST:8000", "[::1]:8000", "[::1]", "127.0.0.1:65535", "127.0.0.1:1"])
def test_the_host_header_may_name_a_port(server, host):
    assert raw_get(server, "/api/info", hosts=(host,))[0] == 200, host


def test_an_unexpected_failure_is_a_500_in_the_apis_shape_and_one_line(sample_dataset, monkeypatch, capfd):
    viewer = Viewer(sample_dataset)

    def broken(*values):
        raise RuntimeError("the disk\nwent away")

    monkeypatch.setattr(viewer, "canvas_png", broken)
    with serving(create_app(viewer)) as port:
        capfd.readouterr()
        status, body = raw_get(port, "/api/canvas.png?t=0")
        assert raw_get(port, "/api/info")[0] == 200
    assert status == 500
    assert json.loads(body) == {"error": "/api/canvas.png: internal error (RuntimeError: the disk went away)", "parameter": None}
    assert capfd.readouterr().err == "rplacevit view: error: /api/canvas.png: RuntimeError: the disk went away\n"


def test_answers_are_computed_on_a_fixed_pool_of_threads(sample_dataset, monkeypatch):
    """However many clients wait, the same few threads compute every answer: the allocator keeps
    memory for each thread that allocated, so the server's grew with its clients (issue 29)."""
    viewer = Viewer(sample_dataset)
    threads = set()

    def info():
        threads.add(threading.get_ident())
        time.sleep(0.02)
        return {}

    monkeypatch.setattr(viewer, "info", info)
    with serving(create_app(viewer)) as port:
        with ThreadPoolExecutor(32) as pool:
            assert set(pool.map(lambda _: raw_get(port, "/api/info")[0], range(96))) == {200}
    assert 0 < len(threads) <= CONCURRENT_ANSWERS, len(threads)


def closing(socks: list[socket.socket], opened: list[float], within: float) -> list[tuple[float | None, bytes]]:
    """For each socket, the seconds from its opening to the server's closing it (None: still
    open after ``within`` seconds) and what the server sent before."""
    closed: list[float | None] = [None] * len(socks)
    received = [b""] * len(socks)
    deadline = time.monotonic() + within
    while None in closed and time.monotonic() < deadline:
        for sock in select.select([s for s, c in zip(socks, closed) if c is None], [], [], 0.05)[0]:
            k = socks.index(sock)
            try:
                received[k] += (data := sock.recv(4096))
            except ConnectionResetError:  # what it sent may be lost: the reset wins
                data = b""
            if not data:
                closed[k] = time.monotonic() - opened[k]
    return list(zip(closed, received))


def test_connections_that_send_nothing_or_half_a_head_are_closed_and_counted(viewer):
    """Issue 29: against a server that holds 30 connections, 30 that send nothing or half a
    request head are closed after the idle timeout, and 20 more meanwhile are refused at once
    (a 503 where it can be read); then the server answers."""
    timeout, held = 2.0, 30
    with serving(create_app(viewer, LOOPBACK_NAMES), idle_timeout=timeout, max_connections=held) as port:
        socks, opened = [], []
        for k in range(held + 20):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
            opened.append(time.monotonic())
            if k % 2:
                socks[-1].sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ")
            if k == held - 1:
                time.sleep(0.2)  # the server has them all before any more come
        try:
            closed = closing(socks, opened, timeout + 10)
        finally:
            for sock in socks:
                sock.close()
        assert all(seconds is not None for seconds, _ in closed), closed
        assert all(timeout - 0.1 < seconds < timeout + 3 for seconds, _ in closed[:held]), closed[:held]
        assert all(seconds < timeout / 2 for seconds, _ in closed[held:]), closed[held:]
        assert all(sent == b"" for _, sent in closed[:held])
        assert all(json.loads(sent.split(b"\r\n\r\n")[1])["error"].startswith("too many connections")
                   for _, sent in closed[held::2]), closed[held::2]
        assert raw_get(port, "/api/info")[0] == 200


def test_concurrent_clients_get_exact_answers(server, sample_dataset, moments):
    import httpx

    history = rplacevit.open(sample_dataset)
    palette = np.array(history.palette_rgb, np.uint8)
    rng = np.random.default_rng(0)
    times = rng.integers(moments[1], moments[-1], size=48)

    def fetch(t: int) -> bool:
        with httpx.Client(base_url=f"http://127.0.0.1:{server}") as http_client:
            response = http_client.get(f"/api/canvas.png?t={t}&region=250,375,378,503")
        return np.array_equal(decode(response), palette[history.canvas_at(int(t))[375:503, 250:378]])

    with ThreadPoolExecutor(16) as pool:
        assert all(pool.map(fetch, times))


# The command line -----------------------------------------------------------------------------


def start_view(*args: str, **popen) -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen([sys.executable, "-m", "rplacevit", "view", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               **popen)
    line = process.stdout.readline()
    assert "http://" in line, (line, process.stderr.read() if process.poll() is not None else "")
    return process, line.split(" at ")[1].split()[0]


def test_the_command_serves_on_a_free_port_and_stops_on_sigterm(sample_dataset):
    import httpx

    process, url = start_view(str(sample_dataset), "--port", "0")
    try:
        assert url.startswith("http://127.0.0.1:") and not url.endswith(":0/")
        assert httpx.get(url + "api/info").json()["events"] == len(rplacevit.open(sample_dataset))
        assert process.stderr.readable()
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert process.returncode == 143 and "terminated" in err and "Traceback" not in err


@pytest.mark.parametrize("flags", [[], ["--open"]])
def test_a_browser_is_opened_only_with_open(sample_dataset, tmp_path, flags):
    """``--open`` hands the printed URL to the browser ($BROWSER, as Python's webbrowser reads
    it: here a command that writes the URL it is given to a file); without it nothing opens."""
    opened = tmp_path / "opened.txt"
    write_url = f"import sys; open({str(opened)!r}, 'w').write(sys.argv[1])"
    browser = f"{shlex.quote(sys.executable)} -c {shlex.quote(write_url)} %s"
    process, url = start_view(str(sample_dataset), "--port", "0", *flags, env=dict(os.environ, BROWSER=browser))
    try:
        deadline = time.monotonic() + 20
        while flags and not opened.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0 if flags else 1)
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)
    assert (opened.read_text() if opened.exists() else None) == (url if flags else None)


def test_the_command_warns_off_loopback_and_names_a_busy_port(sample_dataset):
    process, url = start_view(str(sample_dataset), "--port", "0", "--host", "0.0.0.0")
    try:
        port = int(url.rsplit(":", 1)[1].strip("/"))
        busy = subprocess.run([sys.executable, "-m", "rplacevit", "view", str(sample_dataset), "--port", str(port), "--host", "0.0.0.0"],
                              capture_output=True, text=True, timeout=60)
        assert busy.returncode == 2 and f"cannot listen on 0.0.0.0:{port}" in busy.stderr and "Traceback" not in busy.stderr
    finally:
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=20)
    assert "warning: listening on 0.0.0.0" in err and process.returncode == 130


@pytest.mark.parametrize("host", ["", " "])
def test_the_command_refuses_an_empty_host(sample_dataset, host):
    """An empty address is every interface to the socket module, not the loopback one."""
    done = subprocess.run([sys.executable, "-m", "rplacevit", "view", str(sample_dataset), "--port", "0", "--host", host],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--host" in done.stderr and "empty" in done.stderr, done.stderr
    assert done.stdout == "" and "Traceback" not in done.stderr


def test_a_flood_of_connections_neither_silences_the_command_nor_floods_its_log(sample_dataset):
    """Issue 29: 300 connections that send nothing or half a request, against a server allowed
    128 file descriptors: it keeps its own (no "Too many open files", which asyncio logged in a
    tight loop), answers once they are gone, and its log stays empty."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    process, url = start_view(str(sample_dataset), "--port", "0",
                              preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard)))
    port = int(url.rsplit(":", 1)[1].strip("/"))
    try:
        socks = [socket.socket() for _ in range(300)]
        for sock in socks:
            # All at once, not one by one: those the server's queue drops retry together a second later.
            sock.setblocking(False)
            sock.connect_ex(("127.0.0.1", port))
        time.sleep(2)
        for sock in socks[1::2]:
            with contextlib.suppress(OSError):  # refused already
                sock.send(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        time.sleep(1)
        for sock in socks:
            sock.close()
        deadline = time.monotonic() + 20
        while (answer := status_of(port)) != 200 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert answer == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    assert err == "rplacevit: terminated\n", err[:2000]


# A real browser -------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTEFACTS = Path(os.environ.get("RPLACEVIT_TEST_ARTEFACTS", ROOT / "test-artefacts"))


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no Chromium: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install '.[test]')")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,800",
                     "--force-device-scale-factor=1"):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def wait_until(driver, script: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.05)
    status = driver.execute_script("return document.getElementById('status').textContent")
    raise AssertionError(f"timed out waiting for: {script}; status: {status}")


def drawn_canvas(driver) -> tuple[np.ndarray, dict]:
    """The view's pixels, read back through JS, and where canvas pixel (0, 0) is drawn."""
    import base64

    url, geometry = driver.execute_script("return [document.getElementById('view').toDataURL('image/png'), "
                                          "{...viewer.origin(), z: viewer.state.z, t: viewer.state.t}]")
    pixels = np.array(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB"))
    return pixels, geometry


def expected_screen(history, pixels: np.ndarray, geometry: dict, canvas: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(mask of the screen pixels showing the canvas, their expected RGB) at an integer zoom, the
    canvas being ``canvas`` (palette indices; None: the reader's at the moment shown)."""
    z, ox, oy = geometry["z"], geometry["ox"], geometry["oy"]
    assert z == int(z)
    canvas = np.array(history.palette_rgb, np.uint8)[history.canvas_at(geometry["t"]) if canvas is None else canvas]
    height, width = pixels.shape[:2]
    cy, cx = (np.arange(height) - oy) // int(z), (np.arange(width) - ox) // int(z)
    rows, cols = (cy >= 0) & (cy < history.canvas_height), (cx >= 0) & (cx < history.canvas_width)
    mask = rows[:, None] & cols[None, :]
    expected = canvas[np.clip(cy, 0, history.canvas_height - 1)][:, np.clip(cx, 0, history.canvas_width - 1)]
    return mask, expected


def test_a_browser_scrubs_clicks_a_pixel_and_draws_the_readers_canvas(browser, server, sample_dataset, sample_events):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    history = rplacevit.open(sample_dataset)
    start = rplacevit.times.format_time(sample_events[len(sample_events) // 2, 1])
    browser.get(f"http://127.0.0.1:{server}/#t={start}&x=314&y=439&z=4")
    wait_until(browser, "return window.viewer && viewer.info && viewer.idle() && !!viewer.layers.canvas.image")
    assert browser.execute_script("return viewer.state.t") == rplacevit.times.parse_time(start)
    pixels, geometry = drawn_canvas(browser)
    mask, expected = expected_screen(history, pixels, geometry)
    assert mask.sum() > 100_000
    np.testing.assert_array_equal(pixels[mask], expected[mask])

    # Move the slider with the mouse, to a quarter of its length: a new moment, drawn exactly.
    slider = browser.find_element(By.ID, "slider")
    ActionChains(browser).move_to_element_with_offset(slider, -slider.size["width"] // 4, 0).click().perform()
    wait_until(browser, f"return viewer.state.t !== {geometry['t']} && viewer.idle()")
    pixels, geometry = drawn_canvas(browser)
    first, last = history.time_range
    assert first < geometry["t"] < (first + last) // 2
    mask, expected = expected_screen(history, pixels, geometry)
    np.testing.assert_array_equal(pixels[mask], expected[mask])
    # The address follows the view (written 200 ms after the last change, so waited for).
    wait_until(browser, f"return location.hash.includes('t={rplacevit.times.format_time(geometry['t']).replace('.000Z', 'Z')}')")

    # Click the busiest visible pixel: the panel lists its events up to the page of the moment.
    visible = (sample_events[:, 4] >= 300) & (sample_events[:, 4] < 330) & (sample_events[:, 5] >= 425) & (sample_events[:, 5] < 455)
    keys = sample_events[visible, 5] * 2000 + sample_events[visible, 4]
    key = int(np.bincount(keys).argmax())
    x, y = key % 2000, key // 2000
    view = browser.find_element(By.ID, "view")
    sx, sy = geometry["ox"] + x * geometry["z"] + 1, geometry["oy"] + y * geometry["z"] + 1
    ActionChains(browser).move_to_element_with_offset(view, sx - view.size["width"] // 2, sy - view.size["height"] // 2).click().perform()
    wait_until(browser, "return document.querySelectorAll('#history tr[data-id]').length > 0 && document.querySelector('#next')")
    rows = browser.execute_script("return [...document.querySelectorAll('#history tr[data-id]')].map(r => "
                                  "[Number(r.dataset.id), Number(r.dataset.t), Number(r.dataset.color), Number(r.dataset.user), r.className])")
    mine = sample_events[(sample_events[:, 4] == x) & (sample_events[:, 5] == y)]
    current = int(np.searchsorted(mine[:, 1], geometry["t"], side="right")) - 1
    page = max(current, 0) // PAGE
    shown = mine[page * PAGE:(page + 1) * PAGE]
    assert [row[:4] for row in rows] == shown[:, [0, 1, 3, 2]].tolist()
    assert [i for i, row in enumerate(rows) if row[4] == "current"] == ([current - page * PAGE] if current >= 0 else [])
    top = browser.execute_script("return [...document.querySelectorAll('#top-colors tr[data-color]')].length")
    assert top == 3
    assert f"Pixel {x}, {y}" in browser.find_element(By.ID, "pixel").text

    # Click a user id: their placements are outlined.
    browser.find_element(By.CSS_SELECTOR, "#history a.user").click()
    wait_until(browser, "return viewer.user !== null")
    user = browser.execute_script("return viewer.user.id")
    assert browser.execute_script("return viewer.user.count") == int((sample_events[:, 2] == user).sum())

    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.find_element(By.ID, "heat").click()
    browser.find_element(By.ID, "soon").click()
    wait_until(browser, "return viewer.idle() && !!viewer.layers.heat.image && !!viewer.layers.soon.image")
    browser.save_screenshot(str(ARTEFACTS / "viewer.png"))
    assert (ARTEFACTS / "viewer.png").stat().st_size > 10_000
    # Both overlays off again, the panel closed and the user cleared: the reader's canvas alone.
    browser.find_element(By.ID, "heat").click()
    browser.find_element(By.ID, "soon").click()
    browser.find_element(By.ID, "clear-user").click()
    browser.find_element(By.ID, "close").click()
    wait_until(browser, "return viewer.idle() && !viewer.layers.heat.image && !viewer.layers.soon.image && viewer.selected === null")
    pixels, geometry = drawn_canvas(browser)
    mask, expected = expected_screen(history, pixels, geometry)
    np.testing.assert_array_equal(pixels[mask], expected[mask])


def test_a_browser_shows_the_forecast_then_the_real_canvas(browser, server, viewer, sample_dataset, sample_events):
    """The forecast toggle draws exactly the endpoint's forecast of the visible region in place
    of the canvas, labelled with its moment; at that moment (⇄, or the slider) the real canvas."""
    from selenium.webdriver.common.by import By

    history = rplacevit.open(sample_dataset)
    start = int(sample_events[len(sample_events) // 2, 1])
    to = start + HORIZON

    def shown(at: int) -> str:
        return format_time(at).replace(".000Z", "Z")

    browser.get(f"http://127.0.0.1:{server}/#t={shown(start)}&x=314&y=439&z=4")
    wait_until(browser, "return window.viewer && viewer.info && viewer.idle() && !!viewer.layers.canvas.image")
    assert browser.find_element(By.ID, "forecast-label").is_displayed()
    assert not browser.find_element(By.ID, "forecast-note").is_displayed()
    browser.find_element(By.ID, "forecast").click()
    wait_until(browser, "return viewer.idle() && !!viewer.layers.forecast.image && viewer.forecast.placements !== null", timeout=120)
    x0, y0, x1, y1 = region = tuple(browser.execute_script("return viewer.layers.forecast.region"))
    canvas = history.canvas_at(start)
    canvas[y0:y1, x0:x1] = viewer.forecast_canvas(start, region)[0]  # the page's own answer, cached
    pixels, geometry = drawn_canvas(browser)
    assert geometry["t"] == start
    mask, expected = expected_screen(history, pixels, geometry, canvas)
    assert mask.sum() > 100_000
    np.testing.assert_array_equal(pixels[mask], expected[mask])
    assert browser.find_element(By.ID, "forecast-text").text.startswith(f"forecast for {shown(to)} from {shown(start)}")
    assert "forecast" in browser.find_element(By.ID, "view").get_attribute("class")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(ARTEFACTS / "viewer-forecast.png"))

    # ⇄: the forecast's moment, where the real canvas shows; and back to the forecast.
    browser.find_element(By.ID, "forecast-flip").click()
    wait_until(browser, f"return viewer.state.t === {to} && viewer.idle() && !viewer.layers.forecast.image")
    pixels, geometry = drawn_canvas(browser)
    mask, expected = expected_screen(history, pixels, geometry)
    np.testing.assert_array_equal(pixels[mask], expected[mask])
    assert browser.find_element(By.ID, "forecast-text").text.startswith("real canvas")
    browser.find_element(By.ID, "forecast-flip").click()
    wait_until(browser, f"return viewer.state.t === {start} && viewer.idle() && !!viewer.layers.forecast.image")
    # Off: the reader's canvas alone, and no label.
    browser.find_element(By.ID, "forecast").click()
    wait_until(browser, "return viewer.idle() && !viewer.layers.forecast.image && viewer.forecast === null")
    pixels, geometry = drawn_canvas(browser)
    mask, expected = expected_screen(history, pixels, geometry)
    np.testing.assert_array_equal(pixels[mask], expected[mask])
    assert not browser.find_element(By.ID, "forecast-note").is_displayed()


def test_the_page_reads_times_as_the_command_line_does(browser, server):
    browser.get(f"http://127.0.0.1:{server}/")
    wait_until(browser, "return window.viewer && viewer.info && viewer.idle()")
    for text in ["2022-04-01T18:00:00Z", "2022-04-01 18:00:00", "2022-04-01T18:00", "2022-04-01T18", "2022-04-01",
                 "2022-04-01T18:00:00.250", "2022-04-01T20:00:00+02:00", "2022-04-01 20:00:00+0200", "1648836000123"]:
        assert browser.execute_script("return viewer.parseTime(arguments[0])", text) == rplacevit.times.parse_time(
            text.replace("+0200", "+02:00")), text
    for text in ["yesterday", "2022-13-01", "2022-04-01T25:00"]:
        assert browser.execute_script("return viewer.parseTime(arguments[0])", text) is None, text


@pytest.mark.parametrize("delay_ms", [0, 100])
def test_scrubbing_in_the_browser_shows_new_frames(browser, server, sample_dataset, delay_ms):
    """Frames per second while the slider moves on its own as fast as the page asks: what the
    status line shows (the figure on the 10 M-event dataset is in BENCHMARKS.md). With every
    answer delayed past the slider's next move (a big canvas, a busy server), each answer
    arrives for a moment already left behind, and must still be drawn."""
    browser.get(f"http://127.0.0.1:{server}/#z=4")
    wait_until(browser, "return window.viewer && viewer.info && viewer.idle()")
    frames = browser.execute_async_script("""
        const [delay, done] = arguments;
        const fetchNow = window.fetch;
        window.fetch = (...request) => fetchNow(...request).then((r) => new Promise((ok) => setTimeout(() => ok(r), delay)));
        const slider = document.getElementById('slider');
        const first = Number(slider.min), last = Number(slider.max);
        const before = viewer.frameCount;
        let i = 0;
        const timer = setInterval(() => {
            slider.value = first + (last - first) * (i++ % 50) / 50;
            slider.dispatchEvent(new Event('input'));
        }, 20);
        setTimeout(() => { clearInterval(timer); window.fetch = fetchNow; done(viewer.frameCount - before); }, 1500);
    """, delay_ms)
    assert frames >= 5, f"{frames} frames in 1.5 s"
