"""``rplacevit view``: a local web viewer of a dataset — the canvas at any moment, zoomed and
panned in the browser, a time slider, each pixel's story, one user's placements, and what the
models expect next (see :func:`view`).

The server is Starlette on uvicorn: the one ASGI stack with a test client of its own and signal
handling (Ctrl-C, SIGTERM: a graceful stop). Answers are computed on a fixed pool of
:data:`CONCURRENT_ANSWERS` threads, where the reader and the PNG encoder release the GIL, so
concurrent clients use both cores and the memory does not grow with them (BENCHMARKS.md,
"Viewer"); connections that send nothing, or half a request, are closed (:func:`server`).
Every endpoint is a GET that reads; the page (``viewer/``: HTML, JS and CSS, no build step,
nothing fetched from the network) is served by Starlette's ``StaticFiles``, which serves
nothing outside that folder.

The HTTP API (README, "View"): ``/api/info``, ``/api/canvas.png``, ``/api/pixel``,
``/api/heat.png``, ``/api/user``, ``/api/predict``, ``/api/predict.png`` and
``/api/forecast.png``. The models' answers come from the code that paints and forecasts: the
"changes soon" map is :func:`rplacevit.infer.time_map`, the forecast is the map painter
(:func:`rplacevit.infer.infer`, ``pixel_choice="map"``) as ``rplacevit forecast`` runs it.
A bad parameter is a 400 whose JSON names it: ``{"error": "...", "parameter": "t"}``; any other
failure a 500 of the same shape (``"parameter": null``) and one line on stderr.
"""

from __future__ import annotations

import asyncio
import functools
import io
import ipaddress
import os
import re
import resource
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Union

import numpy as np

from . import ArgumentError
from .devices import DEFAULT_THREADS
from .history import History
from .options import parse_region, quoted
from .times import LATEST_MS, format_time, parse_time

_Path = Union[str, os.PathLike]

#: Where the page lives in the package.
STATIC = Path(__file__).parent / "viewer"
#: The most pixels one PNG of the canvas or of the heat may have (scale included): the largest
#: canvas, 2023's 3000×2000.
MAX_REGION_PIXELS = 3000 * 2000
#: The most pixels one predicted "changes soon" map, or one forecast, may cover: the time model
#: runs on every centre square of it (1,024 windows at 512×512 with the 64/16 presets), for a
#: forecast once per map the painter makes.
MAX_PREDICT_PIXELS = 512 * 512
#: The largest ``scale`` of /api/canvas.png.
MAX_SCALE = 16
#: Events per page of a pixel's history.
PIXEL_PAGE = 100
#: The most placements /api/user lists (it counts them all).
MAX_USER_PLACEMENTS = 10_000
#: Answers computed at once, each on one of as many threads that the server keeps; more requests
#: wait their turn. Two cores are busy with two; an answer holds at most about 32 MB (the heat of
#: 2023's 3000×2000 canvas: 4-byte counts, grey levels, PNG); and as no other thread computes
#: one, the allocator keeps memory for these alone: the server's memory stays bounded whatever
#: the number of clients (a thread per waiting request made it grow with them: BENCHMARKS.md,
#: "Viewer").
CONCURRENT_ANSWERS = 4
#: Seconds a connection may take to send a whole request head, from its opening or from its
#: last answer (uvicorn's keep-alive default): then it is closed, whether it sent nothing or half.
IDLE_TIMEOUT = 5.0
#: Connections held at once (at most an eighth of the process's file descriptors: see
#: :func:`server`); a new one past them gets a 503 and is closed at once.
MAX_CONNECTIONS = 256
#: Predicted maps kept, per (time, region); as many forecasts.
PREDICT_CACHE = 64
#: Host names a loopback server answers to: a page on another site cannot reach it through a
#: name of its own that resolves to 127.0.0.1 (DNS rebinding).
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1", "[::1]")


class BadParameter(ArgumentError):
    """A query parameter the API cannot use: a 400 naming ``parameter`` (None: a request the
    server cannot answer whatever its parameters, such as a prediction without the model)."""

    def __init__(self, parameter: str | None, message: str):
        super().__init__(message)
        self.parameter = parameter


def png(image: np.ndarray, palette: list[tuple[int, int, int]] | None = None) -> bytes:
    """PNG bytes of a (H, W) uint8 image: palette indices with ``palette``, else grey levels.
    Pillow at compression level 1: the fastest of its levels for the same 8-bit image, and
    under 0.5 MB for a busy 2000×2000 canvas (BENCHMARKS.md, "Viewer")."""
    from PIL import Image

    picture = Image.fromarray(np.ascontiguousarray(image))
    if palette is not None:
        picture.putpalette(bytes(np.asarray(palette, dtype=np.uint8).ravel()))
    out = io.BytesIO()
    picture.save(out, "PNG", compress_level=1)
    return out.getvalue()


class Viewer:
    """What the API answers, without HTTP: each method takes the query's values as text (as a
    browser sends them) and returns JSON-ready dicts or PNG bytes; :class:`BadParameter` for
    what it cannot use. Thread-safe: the server calls it from its answering threads at once.

    color_model, time_model: checkpoints (or model objects) for the overlays; they must have
    been trained on the dataset's palette, unless ``allow_other_palette``. device, threads: where
    the models run, and torch's CPU threads (the forecast paints with the same). page_size:
    events per page of a pixel's history.
    """

    def __init__(self, dataset: _Path | History, color_model=None, time_model=None, device: str = "auto", threads: int = DEFAULT_THREADS,
                 allow_other_palette: bool = False, page_size: int = PIXEL_PAGE):
        self.history = dataset if isinstance(dataset, History) else History(dataset)
        self.page_size = page_size
        self.palette = self.history.palette_rgb
        self.columns = self.history.events()
        self.bounds = self.history.event_bounds()
        self.models = {}
        self.threads, self.allow_other_palette = threads, allow_other_palette
        #: The horizon each model's training recorded (None: an object, or no record).
        self.horizons: dict[str, int | None] = {}
        #: How far ahead /api/forecast.png paints, in ms, and the map painter's placements between
        #: two maps (None: one map for the whole horizon): ``rplacevit forecast``'s defaults.
        self.forecast_horizon: int | None = None
        self.forecast_refresh: int | None = None
        if color_model is not None or time_model is not None:
            from .devices import resolve_device, use_threads
            from .models import check_palette, model_on

            self.device = resolve_device(device)
            use_threads(threads)
            for kind, source in (("color", color_model), ("time", time_model)):
                if source is not None:
                    model, training, _ = model_on(source, kind, self.device)
                    self.horizons[kind] = (training or {}).get("horizon_ms")
                    check_palette(model.config, self.history.palette, allow_other_palette, f"the dataset {self.history.path}")
                    self.models[kind] = model
            if len(self.models) == 2:
                from .forecast import ForecastConfig
                from .times import parse_duration

                self.forecast_horizon, self.forecast_refresh = parse_duration(ForecastConfig.horizon), ForecastConfig.refresh
        # One forward pass at a time: the models' threads are the server's to share.
        self.model_lock = threading.Lock()
        self.predict_map = functools.lru_cache(maxsize=PREDICT_CACHE)(self._predict_map)
        self.forecast_canvas = functools.lru_cache(maxsize=PREDICT_CACHE)(self._forecast_canvas)

    # Parameters ---------------------------------------------------------------------------

    def time(self, name: str, text: str | None, default: int | None = None) -> int:
        if text is None or text == "":
            if default is None:
                raise BadParameter(name, f"{name}: missing (ISO 8601 or integer milliseconds)")
            return default
        try:
            return parse_time(text)
        except ArgumentError as error:
            raise BadParameter(name, f"{name}: {error}") from None

    @staticmethod
    def integer(name: str, text: str | None, low: int, high: int, default: int | None = None) -> int:
        if text is None or text == "":
            if default is None:
                raise BadParameter(name, f"{name}: missing (an integer from {low} to {high})")
            return default
        try:
            value = int(text)
        except ValueError:
            raise BadParameter(name, f"{name}: {quoted(text)} is not an integer") from None
        if not low <= value <= high:
            raise BadParameter(name, f"{name}: {value} is not between {low} and {high}")
        return value

    def region(self, text: str | None, limit: int, name: str = "region") -> tuple[int, int, int, int]:
        """``x0,y0,x1,y1`` clipped to the canvas (None: the whole canvas), at most ``limit`` pixels."""
        width, height = self.history.canvas_width, self.history.canvas_height
        if text is None or text == "":
            region = (0, 0, width, height)
        else:
            try:
                x0, y0, x1, y1 = parse_region(text)
            except ArgumentError as error:
                raise BadParameter(name, f"{name}: {error}") from None
            region = (max(x0, 0), max(y0, 0), min(x1, width), min(y1, height))
            if region[0] >= region[2] or region[1] >= region[3]:
                raise BadParameter(name, f"{name}: {text!r} lies off the {width}x{height} canvas")
        x0, y0, x1, y1 = region
        if (x1 - x0) * (y1 - y0) > limit:
            raise BadParameter(name, f"{name}: {x1 - x0}x{y1 - y0} pixels, more than the {limit:,} one request may ask for")
        return region

    def pixel_of(self, x: str | None, y: str | None) -> tuple[int, int]:
        return (self.integer("x", x, 0, self.history.canvas_width - 1), self.integer("y", y, 0, self.history.canvas_height - 1))

    # Endpoints ----------------------------------------------------------------------------

    def info(self) -> dict:
        h = self.history
        first, last = h.time_range if len(h) else (0, 0)
        models = {kind: {"window": m.config.window, "centre": m.config.centre, "inputs": list(m.config.inputs)}
                  for kind, m in self.models.items()}
        return {"dataset": str(h.path), "year": h.year, "width": h.canvas_width, "height": h.canvas_height,
                "canvas_origin": list(h.canvas_origin), "events": len(h), "users": h.users, "first_ms": first, "last_ms": last,
                "first": format_time(first), "last": format_time(last), "palette": h.palette, "white": h.white,
                "bounds": list(self.bounds), "models": models,
                "forecast": None if self.forecast_horizon is None else {"horizon_ms": self.forecast_horizon},
                "limits": {"region_pixels": MAX_REGION_PIXELS, "predict_pixels": MAX_PREDICT_PIXELS,
                           "scale": MAX_SCALE, "pixel_page": self.page_size, "user_placements": MAX_USER_PLACEMENTS}}

    def canvas_png(self, t: str | None, region: str | None, scale: str | None) -> bytes:
        """The canvas at ``t`` (default: the end) in ``region``, each pixel ``scale``×``scale``."""
        t_ms = self.time("t", t, self.history.time_range[1] if len(self.history) else 0)
        k = self.integer("scale", scale, 1, MAX_SCALE, 1)
        x0, y0, x1, y1 = self.region(region, MAX_REGION_PIXELS // (k * k))
        image = self.history.canvas_at(t_ms, (x0, y0, x1, y1))
        if k > 1:
            image = np.repeat(np.repeat(image, k, axis=0), k, axis=1)
        return png(image, self.palette)

    def heat_png(self, t0: str | None, t1: str | None, region: str | None) -> tuple[bytes, int]:
        """Grey levels: the events per pixel of ``region`` with t0 ≤ timestamp < t1
        (:meth:`rplacevit.History.event_counts`: no memory grows with the span), capped at
        255; and the largest count (the header ``X-Heat-Max``)."""
        start, stop = self.time("t0", t0), self.time("t1", t1)
        if stop < start:
            raise BadParameter("t1", "t1: before t0")
        counts = self.history.event_counts(start, stop, self.region(region, MAX_REGION_PIXELS))
        largest = int(counts.max(initial=0))
        return png(np.minimum(counts, 255, out=counts).astype(np.uint8)), largest

    def pixel(self, x: str | None, y: str | None, page: str | None, t: str | None) -> dict:
        """Every event at one pixel, oldest first, :attr:`page_size` a page: when each came,
        its color and user, and how long its color lasted (until the next event there; None for
        the last). Without ``page``, the page of the event in effect at ``t`` (or the first)."""
        px, py = self.pixel_of(x, y)
        ids = self.history.select(px, py, px + 1, py + 1)
        times = self.columns["timestamp"][ids]
        current = None
        if t not in (None, ""):
            current = int(np.searchsorted(times, self.time("t", t), side="right")) - 1
            current = None if current < 0 else current
        size = self.page_size
        pages = max(1, -(-len(ids) // size))
        number = self.integer("page", page, 0, pages - 1, (current or 0) // size)
        shown = slice(number * size, (number + 1) * size)
        # How long each color lasted: until the next event at the pixel (-1: none came).
        lasted = np.where(np.arange(len(times)) + 1 < len(times), np.append(times[1:], 0) - times, -1)[shown]
        events = [{"id": int(e), "t": int(ts), "time": format_time(ts), "color": int(c), "hex": self.history.palette[c],
                   "user": int(u), "lasted_ms": None if d < 0 else int(d)}
                  for e, ts, c, u, d in zip(ids[shown], times[shown], self.columns["color"][ids[shown]],
                                            self.columns["user_id"][ids[shown]], lasted)]
        return {"x": px, "y": py, "total": len(ids), "page": number, "pages": pages, "page_size": size,
                "current": current, "events": events}

    def user(self, user: str | None) -> dict:
        """One user's placements (:func:`rplacevit.users.placements`), at most
        :data:`MAX_USER_PLACEMENTS` of them listed: ``[x, y, t, color]`` rows."""
        from .users import placements, resolve_user

        if user is None or user == "":
            raise BadParameter("id", "id: missing (a user id or an original user hash)")
        try:
            found = resolve_user(self.history, user)
        except ArgumentError as error:
            raise BadParameter("id", f"id: {error}") from None
        rows = placements(self.history, found)
        n = len(rows["id"])
        listed = slice(0, MAX_USER_PLACEMENTS)
        table = np.stack([rows["x"][listed].astype(np.int64), rows["y"][listed].astype(np.int64), rows["timestamp"][listed],
                          rows["color"][listed].astype(np.int64)], axis=1) if n else np.empty((0, 4), np.int64)
        return {"id": found, "hash": self.history.user_hash(found), "count": n, "survived": int(rows["survived"].sum()),
                "first": format_time(rows["timestamp"][0]) if n else None, "last": format_time(rows["timestamp"][-1]) if n else None,
                "truncated": n > MAX_USER_PLACEMENTS, "placements": table.tolist()}

    # Models -------------------------------------------------------------------------------

    def model(self, kind: str):
        model = self.models.get(kind)
        if model is None:
            raise BadParameter(None, f"no {kind} model: start the viewer with --{kind}-model CKPT")
        return model

    def canvas_state(self, t_ms: int, box: tuple[int, int, int, int]):
        """The canvas at ``t_ms`` in the rectangle ``box`` (which may reach past the canvas) as the
        viewer's models see it (:func:`rplacevit.infer.canvas_state`)."""
        from .infer import canvas_state

        return canvas_state(self.history, t_ms, box, self.models.values(), self.device)

    def _predict_map(self, t_ms: int, box: tuple[int, int, int, int]) -> np.ndarray:
        """(h, w) float32 in [0, 1]: the time model's predicted time to the next change (a
        fraction of its horizon) at each pixel of ``box`` at ``t_ms``: the painter's map
        (:func:`rplacevit.infer.time_map`) of the canvas cut into squares of the model's centre
        from (0, 0), so a pixel's prediction is the same whatever box holds it."""
        import torch

        from .infer import time_map

        model = self.model("time")
        centre, window = model.config.centre, model.config.window
        x0, y0 = box[0] // centre * centre, box[1] // centre * centre
        # Every window reads less than `window` cells beyond its square, either way: the state
        # holds them all, with the canvas as it is there (OUTSIDE where it is not open).
        state = self.canvas_state(t_ms, (x0 - window, y0 - window, box[2] + window, box[3] + window))
        with self.model_lock, torch.inference_mode():
            score = time_map(model, state, window, window, box[3] - y0, box[2] - x0, t_ms).cpu().numpy()
        return score[box[1] - y0 :, box[0] - x0 :]

    def predict_png(self, t: str | None, region: str | None) -> bytes:
        """Grey levels of "changes soon": 255 · (1 − predicted time to the next change as a
        fraction of the horizon), 0 where the canvas is not open at ``t``."""
        self.model("time")
        t_ms = self.time("t", t)
        box = self.region(region, MAX_PREDICT_PIXELS)
        from .infer import open_at

        soon = np.where(open_at(self.history, t_ms, box), 1.0 - self.predict_map(t_ms, box), 0.0)
        return png(np.rint(np.clip(soon, 0, 1) * 255).astype(np.uint8))

    def forecast_png(self, t: str | None, region: str | None) -> tuple[bytes, str, str]:
        """The forecast of ``region`` one :attr:`forecast_horizon` after ``t``, as
        ``rplacevit forecast``'s ``model`` forecaster paints it from the real canvas at ``t``
        (:meth:`forecast_canvas`): a palette PNG like /api/canvas.png; the target moment (ISO,
        the header ``X-Forecast-To``); and its placements, N, with where they were counted (the
        header ``X-Forecast-Placements``: ``N; counted=next`` for the events of (t, t + horizon],
        ``N; counted=previous`` for those of (t − horizon, t] when the data ends before t +
        horizon). Cached per (t, region)."""
        for kind in ("color", "time"):
            self.model(kind)
        t_ms = self.time("t", t)
        if t_ms + self.forecast_horizon > LATEST_MS:
            raise BadParameter("t", f"t: {format_time(t_ms)}: the forecast's moment, {self.forecast_horizon:,} ms later, is past year 9999")
        canvas, placements, counted = self.forecast_canvas(t_ms, self.region(region, MAX_PREDICT_PIXELS))
        return png(canvas, self.palette), format_time(t_ms + self.forecast_horizon), f"{placements}; counted={counted}"

    def _forecast_canvas(self, t_ms: int, box: tuple[int, int, int, int]) -> tuple[np.ndarray, int, str]:
        """(forecast canvas of ``box`` at t_ms + horizon: (h, w) uint8 palette indices, N, where
        N was counted: ``next`` or ``previous``); :class:`BadParameter` naming ``region`` for a
        box smaller than the models' window, or with no pixel open at ``t_ms`` when N > 0."""
        from .forecast import model_painting
        from .infer import infer

        x0, y0, x1, y1 = box
        window = max(model.config.window for model in self.models.values())
        if x1 - x0 < window or y1 - y0 < window:
            raise BadParameter("region", f"region: {x1 - x0}x{y1 - y0} pixels, smaller than the models' {window}x{window} window")
        horizon = self.forecast_horizon
        # The events to come, while the data lasts; past its end, as many as in the horizon before.
        counted = "next" if t_ms + horizon <= self.history.time_range[1] else "previous"
        t0 = t_ms + 1 if counted == "next" else t_ms - horizon + 1
        n = len(self.history.select(x0=x0, y0=y0, x1=x1, y1=y1, t0=t0, t1=t0 + horizon))
        ox0, oy0, ox1, oy1 = self.history.canvas_bounds_at(t_ms)
        if n > 0 and not (max(x0, ox0) < min(x1, ox1) and max(y0, oy0) < min(y1, oy1)):
            raise BadParameter("region", f"region: {x0},{y0},{x1},{y1} has no pixel open at t ({format_time(t_ms)}): nothing to paint")
        config = model_painting(self.history.path, t_ms, box, n, horizon, self.forecast_refresh, device=str(self.device),
                                threads=self.threads, allow_other_palette=self.allow_other_palette)
        with self.model_lock:
            painted = infer(self.models["color"], self.models["time"], config)
        return painted.canvas, n, counted

    def predict(self, x: str | None, y: str | None, t: str | None) -> dict:
        """At one pixel and moment: the color model's three likeliest colors for the pixel's
        next placement (with probabilities), the time model's predicted time to its next change,
        and what really came next."""
        import torch

        if not self.models:
            self.model("color")
        px, py = self.pixel_of(x, y)
        t_ms = self.time("t", t)
        answer: dict = {"x": px, "y": py, "t": t_ms}
        if "color" in self.models:
            model = self.models["color"]
            half = model.config.window // 2
            state = self.canvas_state(t_ms, (px - half, py - half, px - half + model.config.window, py - half + model.config.window))
            zero = torch.zeros(1, dtype=torch.int64, device=self.device)
            with self.model_lock, torch.inference_mode():
                logits = model(state.inputs(model, zero, zero, torch.full((1,), t_ms, device=self.device))).float()[0]
            probabilities = torch.softmax(logits[: len(self.palette)], dim=0).cpu().numpy()
            top = np.argsort(-probabilities, kind="stable")[:3]
            answer["colors"] = [{"color": int(c), "hex": self.history.palette[c], "p": float(probabilities[c])} for c in top]
        if "time" in self.models:
            model = self.models["time"]
            score = float(self.predict_map(t_ms, (px, py, px + 1, py + 1))[0, 0])
            horizon, objective = self.horizons.get("time"), model.config.time_objective
            # mse: the predicted time to the next change, as a fraction of the horizon; bce: 1 − the
            # probability of a change within it (TimeModel.time_fraction).
            answer["time"] = {"objective": objective, "score": score, "horizon_ms": horizon,
                              "ms": score * horizon if objective == "mse" and horizon is not None else None,
                              "p_change": 1 - score if objective == "bce" else None}
        ids = self.history.select(px, py, px + 1, py + 1, t_ms + 1, None)
        if len(ids):
            e = int(ids[0])
            c = int(self.columns["color"][e])
            answer["next"] = {"id": e, "t": int(self.columns["timestamp"][e]), "time": format_time(self.columns["timestamp"][e]),
                              "color": c, "hex": self.history.palette[c], "user": int(self.columns["user_id"][e])}
        else:
            answer["next"] = None
        return answer


#: A Host header: a name or an IPv4 address, or an IPv6 address in brackets; then maybe a port.
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::([0-9]{1,5}))?", re.IGNORECASE)


def host_name(header: str) -> str | None:
    """The host of a Host header, in lower case (``[::1]:8000`` → ``::1``, ``LOCALHOST:80`` →
    ``localhost``); None unless the header is exactly a host name, an IPv4 address or an IPv6
    address in brackets, then maybe ``:`` and a port from 1 to 65535 (``evil.com@localhost``,
    ``localhost/evil``, ``[::1]evil`` and ``localhost:abc`` are none)."""
    match = _HOST.fullmatch(header)
    if match is None or (match[2] is not None and not 1 <= int(match[2]) <= 65535):
        return None
    host = match[1].lower()
    if host.startswith("["):
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            return None
    return host.strip("[]")


class OnlyHosts:
    """ASGI middleware: a 400 for any request whose Host header names none of ``names``.
    Starlette's TrustedHostMiddleware refuses ``[::1]:8000`` before Starlette 1.7 and
    ``LOCALHOST`` before 1.9 (measured), and those versions need Python 3.11, while this package
    runs on 3.9: hence this one, whatever the Starlette."""

    def __init__(self, app, names: tuple[str, ...]):
        self.app, self.names = app, {name.strip("[]").lower() for name in names}

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            # HTTP/1.1 asks for exactly one (RFC 9112, 3.2): with two, which one a proxy read is unknown.
            hosts = [value for name, value in scope["headers"] if name == b"host"]
            host = host_name(hosts[0].decode("latin-1")) if len(hosts) == 1 else None
            if host not in self.names:
                from starlette.responses import PlainTextResponse

                await PlainTextResponse("Invalid host header", status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(viewer: Viewer, allowed_hosts: tuple[str, ...] | None = None):
    """The Starlette application of ``viewer``: the API under ``/api/``, the page at ``/``.
    ``allowed_hosts``: the Host names it answers to (None: any)."""
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    answering = ThreadPoolExecutor(CONCURRENT_ANSWERS, thread_name_prefix="rplacevit-answer")

    def endpoint(path: str, answer: Callable, *names: str, media: str = "application/json", cache: bool = False,
                 headers: tuple[str, ...] = ()) -> Route:
        """``answer`` gives the body, or with ``headers`` (body, value of each header)."""

        def respond(query) -> Response:
            try:
                result = answer(*(query.get(name) for name in names))
                sent = {"Cache-Control": "max-age=3600" if cache else "no-store"}
                if headers:
                    result, *values = result
                    sent.update((name, str(value)) for name, value in zip(headers, values))
                # JSON is encoded here too: neither its memory nor its time on the event loop's thread.
                if media == "application/json":
                    return JSONResponse(result, headers=sent)
                return Response(result, media_type=media, headers=sent)
            except BadParameter as error:
                return JSONResponse({"error": str(error), "parameter": error.parameter}, status_code=400)
            except Exception as error:
                what = f"{type(error).__name__}: {' '.join(str(error).split())}"[:300]
                print(f"rplacevit view: error: {path}: {what}", file=sys.stderr, flush=True)
                return JSONResponse({"error": f"{path}: internal error ({what})", "parameter": None}, status_code=500)

        async def handle(request) -> Response:
            query = request.query_params
            unknown = sorted(set(query) - set(names))
            if unknown:
                return JSONResponse({"error": f"{unknown[0]}: unknown parameter (this endpoint takes {', '.join(names) or 'none'})",
                                     "parameter": unknown[0]}, status_code=400)
            return await asyncio.get_running_loop().run_in_executor(answering, respond, query)

        return Route(path, handle)

    png_type = "image/png"
    routes = [
        endpoint("/api/info", viewer.info),
        endpoint("/api/canvas.png", viewer.canvas_png, "t", "region", "scale", media=png_type, cache=True),
        endpoint("/api/heat.png", viewer.heat_png, "t0", "t1", "region", media=png_type, cache=True, headers=("X-Heat-Max",)),
        endpoint("/api/pixel", viewer.pixel, "x", "y", "page", "t"),
        endpoint("/api/user", viewer.user, "id"),
        endpoint("/api/predict", viewer.predict, "x", "y", "t"),
        endpoint("/api/predict.png", viewer.predict_png, "t", "region", media=png_type, cache=True),
        endpoint("/api/forecast.png", viewer.forecast_png, "t", "region", media=png_type, cache=True,
                 headers=("X-Forecast-To", "X-Forecast-Placements")),
        Mount("/", StaticFiles(directory=STATIC, html=True)),
    ]
    middleware = [] if allowed_hosts is None else [Middleware(OnlyHosts, names=tuple(allowed_hosts))]

    async def not_found(request, exc):
        return JSONResponse({"error": f"{request.url.path}: no such page"}, status_code=404)

    return Starlette(routes=routes, middleware=middleware, exception_handlers={404: not_found})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on ``host``:``port`` (0: a free port); ArgumentError naming the
    address when it cannot (in use, not an address of this machine, empty)."""
    if not host.strip():
        # The socket module reads "" as every interface: never what an empty option meant.
        raise ArgumentError("`host` is empty: give the address to listen on (127.0.0.1, this machine alone; 0.0.0.0, every interface)")
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it a small answer waits 40 ms for the client's
        # delayed ACK of the headers before its body goes (Nagle's algorithm).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(128)
    except (OSError, OverflowError) as error:
        raise ArgumentError(f"cannot listen on {host}:{port} ({error}); choose another `port` or `host`") from None
    return sock


def server(app, idle_timeout: float = IDLE_TIMEOUT, max_connections: int = MAX_CONNECTIONS):
    """A uvicorn server of ``app`` (``.run(sockets=[listen(...)])``) whose clients cannot hold
    what they do not use: a connection that has not sent a whole request head ``idle_timeout``
    seconds after it opened or after its last answer is closed, and past ``max_connections`` (or
    an eighth of the process's file descriptors) a new one gets a 503 and is closed at once."""
    import uvicorn
    from uvicorn.protocols.http.h11_impl import H11Protocol

    # asyncio accepts up to `backlog` connections a turn of its loop; one past the limit is refused
    # the next turn and closed the turn after. So the limit, and three backlogs of its size, take
    # at most half the descriptors: out of them, asyncio logged every failed accept, in a tight loop.
    limit = min(max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0] // 8)
    body = b'{"error": "too many connections at once: try again later", "parameter": null}'
    busy = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n%s" % (
        len(body), body)

    class Connection(H11Protocol):
        """uvicorn's HTTP/1.1 connection with a deadline on each request head: uvicorn's own
        keep-alive timer waits only after an answer, and the first byte of a head cancels it."""

        deadline: asyncio.TimerHandle | None = None

        def wait_for_head(self, wait: bool) -> None:
            if self.deadline is not None:
                self.deadline.cancel()
            self.deadline = self.loop.call_later(idle_timeout, self.transport.close) if wait else None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > limit:
                transport.write(busy)
                transport.close()
            else:
                self.wait_for_head(True)

        def handle_events(self) -> None:
            super().handle_events()
            if self.cycle is not None and not self.cycle.response_complete:  # a whole head came: it is being answered
                self.wait_for_head(False)

        def on_response_complete(self) -> None:
            # Before uvicorn's, which goes on to a pipelined request's head if one came.
            self.wait_for_head(True)
            super().on_response_complete()

        def connection_lost(self, exc) -> None:
            self.wait_for_head(False)
            super().connection_lost(exc)

    return uvicorn.Server(uvicorn.Config(app, http=Connection, backlog=limit, log_level="warning", access_log=False))


def view(dataset: _Path, port: int = 8000, host: str = "127.0.0.1", color_model: _Path | None = None, time_model: _Path | None = None,
         open_browser: bool = False, device: str = "auto", threads: int = DEFAULT_THREADS, allow_other_palette: bool = False,
         ready: Callable[[str], None] | None = None) -> None:
    """Serves the viewer of ``dataset`` on ``host``:``port`` until Ctrl-C or SIGTERM. Prints the
    URL (and calls ``ready(url)``); opens it in a browser with ``open_browser``. Binds the
    loopback address by default; any other ``host`` is reachable by other machines, which a
    warning on stderr says."""
    viewer = Viewer(dataset, color_model, time_model, device, threads, allow_other_palette)
    loopback = is_loopback(host)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else shown}:{bound}/"
    if not loopback:
        print(f"rplacevit view: warning: listening on {host}, reachable by other machines on the network "
              "(the data and the models are read-only, but anyone can read them)", file=sys.stderr)
    print(f"viewing {viewer.history.path} at {url} (Ctrl-C stops)", flush=True)
    if ready is not None:
        ready(url)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    app = create_app(viewer, (*LOOPBACK_NAMES, host) if loopback else None)
    try:
        server(app).run(sockets=[sock])
    finally:
        sock.close()
