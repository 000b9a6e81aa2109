"""The two Vision Transformers: :class:`ColorModel` (which color the centre pixel takes next) and
:class:`TimeModel` (how soon each central pixel changes), both built from a :class:`ModelConfig`.

A window is a ``(B, window, window)`` integer tensor (uint8 or int64) of palette indices 0..31,
with OUTSIDE (32) for cells off the canvas; the event's pixel is at row and column ``window // 2``.
The trunk sees it as tokens::

    [cls] + centre² pixel tokens (the central centre×centre pixels, one token each)
          + (window/patch)² patch tokens (the whole window in patch×patch squares; optional)
          + placer_k placer tokens (with the ``placer`` input)

then pre-norm Transformer blocks and a final LayerNorm. The color head reads the cls token plus
the token of the event's own pixel (``pixel_head``; the cls token alone in models saved before
it existed); the time head reads every pixel token. Checkpoints carry their config (:func:`to_checkpoint`,
:func:`load_model`), so no hyperparameter is ever typed twice.

**Inputs** (``ModelConfig.inputs``; a model takes a window tensor, or a dict of these tensors):

- ``color``: the window, under the key ``"color"`` (always present).
- ``age``: ``"age"``, (B, window, window) age buckets 0..31 of every cell (see
  :meth:`rplacevit.History.age_buckets`: 30 log-scaled buckets from under 8.2 s to over 37 h,
  :data:`AGE_NEVER`, :data:`AGE_OUTSIDE`), embedded and added to the pixel tokens and, through a
  table like the colors', to the patch tokens.
- ``previous``: ``"previous"``, (B, window, window) the color every cell showed before its last
  placement (white where it had fewer than two, OUTSIDE where the window has it; see
  :meth:`rplacevit.History.previous_colors`): what a damaged pixel is restored to. Embedded and
  added like ``age``, with tables of its own.
- ``placer``: the event's user's latest ``placer_k`` earlier placements: ``"placer_colors"``
  (B, k) palette indices (OUTSIDE where there are fewer), ``"placer_ages"`` (B, k) age buckets of
  the time from each to the event, and ``"placer_count"`` (B,) a bucket of how many placements
  the user made before (:func:`placer_count_bucket`), added to the cls token; each placement is
  a token. :data:`PLACER_UNKNOWN` as the count means "the placer is unknown".
- ``users``: for every cell, the original's seed vector of the user who placed it last:
  ``"users"`` (B, window, window) int64 rows of ``"user_vectors"`` (M, user_features) float32,
  row 0 meaning unknown; projected by a Linear layer (with an "unknown" feature) and added to the
  pixel tokens, and averaged over each patch for the patch tokens.

``placer`` and ``users`` may be left out of the dict: they are then unknown, as they are when
training drops them (``input_dropout``). Building the dict from a dataset:
:func:`rplacevit.data.model_inputs`.
"""

from __future__ import annotations

import math
import os
import pickle
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

# Same values as rplacevit.PALETTE_HEX / rplacevit.OUTSIDE; repeated here so that this module
# loads without the Rust extension (it imports the package only inside `trained_palette`, for
# the 2022 palette of checkpoints that recorded none).
PALETTE_SIZE = 32
OUTSIDE = 32
VOCABULARY = PALETTE_SIZE + 1  # the 32 colors and OUTSIDE

KINDS = ("color", "time")
POSITIONS = ("learned", "sinusoidal")
#: What a model may see, in this order (see the module docstring).
INPUTS = ("color", "age", "previous", "placer", "users")
#: The time model's objectives: "mse" on the capped time to the next change (the original's),
#: "bce": the probability that the pixel changes within the horizon, by binary cross-entropy.
TIME_OBJECTIVES = ("mse", "bce")
# The age buckets of rplacevit.History.age_buckets (AGE_BUCKETS, AGE_NEVER, AGE_OUTSIDE there),
# repeated like the palette: 30 buckets of real ages, then "never placed on", then off the canvas.
AGE_NEVER = 30
AGE_OUTSIDE = 31
AGE_VOCABULARY = 32
#: Buckets of a placer's earlier placements: 0 for none, 1 + ⌊log₂ n⌋ up to 16 (32,768 and more).
PLACER_COUNT_BUCKETS = 17
#: The placer count bucket of an unknown placer (input dropout, or painting).
PLACER_UNKNOWN = PLACER_COUNT_BUCKETS
#: Width of a user's seed vector (rplacevit.users.SEED_WIDTH).
USER_FEATURES = 38

#: Size presets: tiny trains in seconds on a CPU; small (≈1.9 M parameters) and base (≈85 M)
#: are the sizes of the original author's two runs.
PRESETS = {
    "tiny": dict(d_model=32, heads=2, blocks=2, d_ff=64),
    "small": dict(d_model=192, heads=6, blocks=4, d_ff=768),
    "base": dict(d_model=768, heads=12, blocks=12, d_ff=3072),
}


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model; stored in every checkpoint.

    kind: "color" or "time". window: side of the input view in pixels. centre: side of the
    central square seen as pixel tokens (and predicted by the time model). patch: side of a
    periphery patch in pixels. periphery: add the whole window as patch tokens. positions:
    "sinusoidal" (fixed 2-D sin/cos of each token's centre in window pixels) or "learned".
    d_model, heads, blocks, d_ff: width, attention heads, Transformer blocks, MLP hidden width.
    dropout: on the token sum, attention weights and residual branches (0 disables it).
    inputs: what the model sees (see :data:`INPUTS` and the module docstring; "color" always).
    placer_k: earlier placements of the placer seen with the ``placer`` input. input_dropout:
    in training, the probability that an event's ``placer`` and (separately) its ``users`` are
    replaced by "unknown", so the model also works where they are not known. time_objective:
    see :data:`TIME_OBJECTIVES`. user_features: width of the ``users`` input's vectors.
    pixel_head: the color head reads the sum of the cls token and the event pixel's token, a
    direct path to what the pixel shows, showed before and how long ago it changed (what it
    gains and costs: README, "Can the canvas be predicted?"); False is the original's cls-only
    head, and what checkpoints saved before this field existed were trained with
    (:func:`load_model` reads them so). Time models ignore it.
    palette: the colors of the dataset the model was trained on, ``#RRGGBB`` by palette index
    (training records it; empty in checkpoints from before palettes were recorded: the 32
    colors of 2022 and 2023). Whatever the palette, the vocabulary is the 32 indices and
    OUTSIDE; a 16-color model never sees the other 16.
    """

    kind: str
    window: int = 64
    centre: int = 16
    patch: int = 4
    periphery: bool = True
    d_model: int = 192
    heads: int = 6
    blocks: int = 4
    d_ff: int = 768
    dropout: float = 0.0
    positions: str = "sinusoidal"
    inputs: tuple[str, ...] = ("color",)
    placer_k: int = 8
    input_dropout: float = 0.1
    time_objective: str = "mse"
    user_features: int = USER_FEATURES
    pixel_head: bool = True
    palette: tuple[str, ...] = ()

    def __post_init__(self):
        self.palette = tuple(self.palette)
        if len(self.palette) > PALETTE_SIZE or not all(isinstance(c, str) and len(c) == 7 and c[0] == "#" for c in self.palette):
            raise ValueError(f"palette {self.palette!r}: expected at most {PALETTE_SIZE} colors as #RRGGBB")
        if isinstance(self.inputs, str):
            self.inputs = tuple(filter(None, (name.strip() for name in self.inputs.split(","))))
        unknown = [name for name in self.inputs if name not in INPUTS]
        if unknown or "color" not in self.inputs:
            raise ValueError(f"inputs {tuple(self.inputs)!r}: expected \"color\" and any of {INPUTS[1:]}")
        self.inputs = tuple(name for name in INPUTS if name in self.inputs)  # one spelling: the order of INPUTS
        if self.time_objective not in TIME_OBJECTIVES:
            raise ValueError(f"time_objective {self.time_objective!r}: expected one of {TIME_OBJECTIVES}")
        if not 0.0 <= self.input_dropout <= 1.0:
            raise ValueError(f"input_dropout {self.input_dropout}: expected 0 <= input_dropout <= 1")
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: expected one of {KINDS}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions {self.positions!r}: expected one of {POSITIONS}")
        for name in ("window", "centre", "patch", "d_model", "heads", "blocks", "d_ff", "placer_k", "user_features"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) > 0):
                raise ValueError(f"{name} = {getattr(self, name)!r}: expected a positive integer")
        if self.window % self.patch:
            raise ValueError(f"window {self.window} is not a multiple of patch {self.patch}")
        if self.centre > self.window:
            raise ValueError(f"centre {self.centre} is larger than window {self.window}")
        if (self.window - self.centre) % 2:
            raise ValueError(
                f"centre {self.centre} and window {self.window} differ in parity: "
                "the centre square could not be centred"
            )
        if self.d_model % self.heads:
            raise ValueError(f"d_model {self.d_model} is not a multiple of heads {self.heads}")
        if self.positions == "sinusoidal" and self.d_model % 4:
            raise ValueError(f"d_model {self.d_model}: sinusoidal 2-D positions need a multiple of 4")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout {self.dropout}: expected 0 <= dropout < 1")
        if not isinstance(self.pixel_head, bool):
            raise ValueError(f"pixel_head = {self.pixel_head!r}: expected True or False")

    @classmethod
    def preset(cls, name: str, kind: str, **overrides) -> ModelConfig:
        """The config of preset ``name`` (see :data:`PRESETS`) for ``kind``; ``overrides`` replace
        any field, e.g. ``ModelConfig.preset("tiny", "color", window=16, centre=4)``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: expected one of {tuple(PRESETS)}")
        return cls(kind=kind, **{**PRESETS[name], **overrides})

    @property
    def loss_name(self) -> str:
        """What the model's training loss is, in words (the loss plots' axis)."""
        if self.kind == "color":
            return "cross-entropy (nats)"
        if self.time_objective == "bce":
            return "binary cross-entropy of a change within the horizon (nats)"
        return "MSE of the capped time (fractions of the horizon)"

    @property
    def event_token(self) -> int:
        """Index of the event pixel's token (row and column window // 2) among the trunk's tokens:
        the centre square always holds it (window and centre have the same parity)."""
        offset = self.window // 2 - self.centre_start
        return 1 + offset * self.centre + offset

    @property
    def centre_start(self) -> int:
        """First row (and column) of the centre square in the window: 24 for 64/16."""
        return (self.window - self.centre) // 2


def trained_palette(config: ModelConfig) -> tuple[str, ...]:
    """The colors ``config``'s model was trained on (see :attr:`ModelConfig.palette`)."""
    if config.palette:
        return config.palette
    from . import PALETTE_HEX  # the 2022 palette, of the checkpoints that did not record one

    return tuple(PALETTE_HEX)


def check_palette(config: ModelConfig, palette, allow: bool, what: str) -> None:
    """ValueError unless ``palette`` (a dataset's colors) is the one ``config``'s model was
    trained on, or ``allow``."""
    trained = trained_palette(config)
    if tuple(palette) != trained and not allow:
        raise ValueError(f"the {config.kind} model was trained on a palette of {len(trained)} colors ({', '.join(trained[:4])}, …) "
                         f"and {what} has another of {len(palette)} ({', '.join(list(palette)[:4])}, …): its indices mean "
                         "other colors; pass `allow_other_palette=True` to use it anyway")


def sinusoidal_positions(rows: torch.Tensor, cols: torch.Tensor, d_model: int) -> torch.Tensor:
    """(N,) float row and column coordinates in pixels → (N, d_model): the first half of the
    features encodes the row, the second the column, each as sin and cos at geometric
    frequencies from 1 to 1/10000 radians per pixel."""
    quarter = d_model // 4
    frequencies = 10000.0 ** (-torch.arange(quarter, dtype=torch.float32) / quarter)
    row_angles, col_angles = rows[:, None] * frequencies, cols[:, None] * frequencies
    return torch.cat([row_angles.sin(), row_angles.cos(), col_angles.sin(), col_angles.cos()], dim=1)


def cell_centres(first: int, count: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column, in window pixels, of the centres of a count×count grid of size×size cells
    whose first cell starts at (first, first); each (count²,), in row-major order."""
    coordinates = first + size * (torch.arange(count, dtype=torch.float32) + 0.5)
    return coordinates.repeat_interleave(count), coordinates.repeat(count)


class PatchEmbedding(nn.Module):
    """(B, window, window) int64 indices below ``vocabulary`` (palette indices, or age buckets)
    → (B, (window/patch)², d_model) patch tokens.

    The same map as a bias-free Linear layer on one-hot patches (patch²·vocabulary inputs),
    without the one-hot: row ``cell·vocabulary + value`` of the table is the weight column that
    cell's one-hot bit would select, so a patch's token is the sum of its cells' rows. The patch
    token type embedding plays the part of the bias.
    """

    def __init__(self, config: ModelConfig, vocabulary: int = VOCABULARY):
        super().__init__()
        self.patch = config.patch
        self.table = nn.EmbeddingBag(config.patch**2 * vocabulary, config.d_model, mode="sum")
        self.register_buffer("cell_offsets", torch.arange(config.patch**2) * vocabulary, persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch = len(windows)
        return self.table(patches(windows, self.patch) + self.cell_offsets).view(batch, -1, self.table.embedding_dim)


def patches(grid: torch.Tensor, patch: int) -> torch.Tensor:
    """(B, side, side, …) → (B·(side/patch)², patch², …): the patch×patch squares in row-major
    order, each square's cells in row-major order."""
    batch, side, rest = len(grid), grid.shape[1], grid.shape[3:]
    n = side // patch
    return grid.reshape(batch, n, patch, n, patch, *rest).transpose(2, 3).reshape(batch * n * n, patch * patch, *rest)


class Attention(nn.Module):
    """Multi-head self-attention without a mask: every token sees the whole window."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.heads, self.attention_dropout = config.heads, config.dropout
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.residual_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        q, k, v = self.qkv(x).view(batch, tokens, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        dropout = self.attention_dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        return self.residual_dropout(self.proj(y.transpose(1, 2).reshape(batch, tokens, width)))


class MLP(nn.Module):
    """d_model → d_ff → ReLU → d_model."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff)
        self.proj = nn.Linear(config.d_ff, config.d_model)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.relu(self.fc(x))))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.d_model)
        self.attention = Attention(config)
        self.mlp_norm = nn.LayerNorm(config.d_model)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class Trunk(nn.Module):
    """The inputs (see the module docstring) → (B, 1 + centre² [+ (window/patch)²] [+ placer_k],
    d_model) normalised tokens: cls first, then the pixel tokens in row-major order, then the
    patches, then the placer's placements (the latest first)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d, c, n = config.d_model, config.centre, config.window // config.patch
        # Equivalent to the original's Linear on one-hot colors: row k is color k's weight column.
        self.pixel_embedding = nn.Embedding(VOCABULARY, d)
        self.cls_token = nn.Parameter(0.02 * torch.randn(1, 1, d))
        self.pixel_type = nn.Parameter(0.02 * torch.randn(d))
        self._add_positions("pixel_positions", cell_centres(config.centre_start, c, 1))
        if config.periphery:
            self.patch_embedding = PatchEmbedding(config)
            self.patch_type = nn.Parameter(0.02 * torch.randn(d))
            self._add_positions("patch_positions", cell_centres(0, n, config.patch))
        if "age" in config.inputs:
            self.age_embedding = nn.Embedding(AGE_VOCABULARY, d)
            if config.periphery:
                self.age_patch_embedding = PatchEmbedding(config, AGE_VOCABULARY)
        if "previous" in config.inputs:
            self.previous_embedding = nn.Embedding(VOCABULARY, d)
            if config.periphery:
                self.previous_patch_embedding = PatchEmbedding(config)
        if "placer" in config.inputs:
            self.placer_color_embedding = nn.Embedding(VOCABULARY, d)
            self.placer_age_embedding = nn.Embedding(AGE_VOCABULARY, d)
            self.placer_count_embedding = nn.Embedding(PLACER_COUNT_BUCKETS + 1, d)
            self.placer_positions = nn.Parameter(0.02 * torch.randn(config.placer_k, d))
        if "users" in config.inputs:
            # The vector and an "unknown" flag: Linear commutes with the mean over a patch.
            self.user_projection = nn.Linear(config.user_features + 1, d)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.blocks))
        self.norm = nn.LayerNorm(d)

    def _add_positions(self, name: str, centres: tuple[torch.Tensor, torch.Tensor]):
        """Both grids are placed by their cells' centres in window pixels, so a pixel token and
        the patch that contains it get nearby sinusoidal positions."""
        if self.config.positions == "learned":
            learned = nn.Parameter(0.02 * torch.randn(len(centres[0]), self.config.d_model))
            self.register_parameter(name, learned)
        else:  # derived from the config, so kept out of the state dict
            self.register_buffer(name, sinusoidal_positions(*centres, self.config.d_model), persistent=False)

    def forward(self, inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        config = self.config
        inputs = check_inputs(inputs, config)
        if self.training and config.input_dropout > 0:
            inputs = drop_inputs(inputs, config.input_dropout)
        windows = inputs["color"]
        batch, start, c = len(windows), config.centre_start, config.centre

        def centre_of(grid: torch.Tensor) -> torch.Tensor:
            return grid[:, start : start + c, start : start + c].reshape(batch, c * c, *grid.shape[3:])

        pixels = self.pixel_embedding(centre_of(windows)) + self.pixel_positions + self.pixel_type
        if config.periphery:
            patch_tokens = self.patch_embedding(windows) + self.patch_positions + self.patch_type
        cls = self.cls_token.expand(batch, -1, -1)
        if "age" in config.inputs:
            pixels = pixels + self.age_embedding(centre_of(inputs["age"]))
            if config.periphery:
                patch_tokens = patch_tokens + self.age_patch_embedding(inputs["age"])
        if "previous" in config.inputs:
            pixels = pixels + self.previous_embedding(centre_of(inputs["previous"]))
            if config.periphery:
                patch_tokens = patch_tokens + self.previous_patch_embedding(inputs["previous"])
        if "users" in config.inputs:
            rows = inputs["users"]
            vectors = torch.cat([inputs["user_vectors"].float(), torch.zeros_like(inputs["user_vectors"][:, :1]).float()], dim=1)
            vectors[0, -1] = 1.0  # row 0: unknown
            cells = vectors[rows]  # (B, window, window, features + 1)
            pixels = pixels + self.user_projection(centre_of(cells))
            if config.periphery:
                pooled = patches(cells, config.patch).mean(dim=1).view(batch, -1, cells.shape[-1])
                patch_tokens = patch_tokens + self.user_projection(pooled)
        tokens = [cls, pixels]
        if config.periphery:
            tokens.append(patch_tokens)
        if "placer" in config.inputs:
            tokens[0] = cls + self.placer_count_embedding(inputs["placer_count"])[:, None]
            tokens.append(self.placer_color_embedding(inputs["placer_colors"]) + self.placer_age_embedding(inputs["placer_ages"])
                          + self.placer_positions)
        x = self.dropout(torch.cat(tokens, dim=1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


def placer_count_bucket(counts: torch.Tensor) -> torch.Tensor:
    """(B,) int64 bucket of each count of earlier placements: 0 for none, 1 + ⌊log₂ n⌋ (exact,
    by the bit length), at most PLACER_COUNT_BUCKETS − 1."""
    counts = counts.long()
    bits = torch.zeros_like(counts)
    for shift in range(PLACER_COUNT_BUCKETS - 1):
        bits += (counts >> shift) > 0
    return bits


def age_bucket(ages_ms: torch.Tensor) -> torch.Tensor:
    """The age bucket of each age in ms (int64, any shape; on any device), exactly as
    :meth:`rplacevit.History.age_buckets` buckets them (the Rust ``age_bucket``): the age clamped
    to [1.5·2¹², 2²⁷] is m·2ᵉ with m in [0.5, 1); highest bit h = e − 1, next bit b = m ≥ 0.75,
    bucket 2h + b − 25. A negative age (none) is :data:`AGE_NEVER`."""
    clamped = ages_ms.clamp(6_144, 1 << 27).double()
    mantissa, exponent = torch.frexp(clamped)
    buckets = 2 * (exponent.long() - 1) + (mantissa >= 0.75).long() - 25
    return torch.where(ages_ms < 0, AGE_NEVER, buckets)


def unknown_placer(batch: int, k: int, device) -> dict[str, torch.Tensor]:
    """The ``placer`` inputs of ``batch`` events whose placer is unknown."""
    return {"placer_colors": torch.full((batch, k), OUTSIDE, dtype=torch.long, device=device),
            "placer_ages": torch.full((batch, k), AGE_OUTSIDE, dtype=torch.long, device=device),
            "placer_count": torch.full((batch,), PLACER_UNKNOWN, dtype=torch.long, device=device)}


def unknown_users(windows: torch.Tensor, features: int) -> dict[str, torch.Tensor]:
    """The ``users`` inputs of windows whose placers are all unknown."""
    return {"users": torch.zeros(windows.shape, dtype=torch.long, device=windows.device),
            "user_vectors": torch.zeros((1, features), dtype=torch.float32, device=windows.device)}


def drop_inputs(inputs: dict[str, torch.Tensor], p: float) -> dict[str, torch.Tensor]:
    """``inputs`` with each event's placer, and (drawn separately) its cells' users, replaced by
    unknown with probability ``p`` (torch's generator)."""
    inputs = dict(inputs)
    batch, device = len(inputs["color"]), inputs["color"].device
    if "placer_count" in inputs:
        drop = torch.rand(batch, device=device) < p
        unknown = unknown_placer(batch, inputs["placer_colors"].shape[1], device)
        for key, value in unknown.items():
            inputs[key] = torch.where(drop.view(-1, *[1] * (value.dim() - 1)), value, inputs[key])
    if "users" in inputs:
        drop = torch.rand(batch, device=device) < p
        inputs["users"] = torch.where(drop[:, None, None], 0, inputs["users"])
    return inputs


def check_windows(windows: torch.Tensor, window: int) -> torch.Tensor:
    """Validate a (B, window, window) batch of palette indices and return it as int64.

    Raises TypeError for a floating (or complex) dtype and ValueError for a wrong shape or a
    value outside 0..32: an index past 32 would otherwise silently select another patch cell's
    embedding. On a GPU the range check is a device-side assertion instead, which fails the
    run as surely but never makes a step wait for the GPU to answer.
    """
    if windows.is_floating_point() or windows.is_complex():
        raise TypeError(f"windows must hold integer palette indices (uint8 or int64), not {windows.dtype}")
    if windows.dim() != 3 or windows.shape[1:] != (window, window):
        raise ValueError(f"windows of shape {tuple(windows.shape)}: expected (B, {window}, {window})")
    low, high = torch.aminmax(windows)
    if windows.device.type != "cpu" and hasattr(torch, "_assert_async"):
        torch._assert_async((low >= 0) & (high <= OUTSIDE), "window values outside palette indices 0..31 and OUTSIDE")
    elif low < 0 or high > OUTSIDE:
        raise ValueError(
            f"window values {int(low)}..{int(high)}: expected palette indices 0..31 or OUTSIDE ({OUTSIDE})"
        )
    return windows.long()


def check_inputs(inputs: torch.Tensor | dict[str, torch.Tensor], config: ModelConfig) -> dict[str, torch.Tensor]:
    """The inputs of a model of ``config`` as a dict of int64 tensors (float32 user vectors),
    the unknown ones filled in: ValueError (or TypeError) naming what is missing or malformed."""
    if isinstance(inputs, torch.Tensor):
        inputs = {"color": inputs}
    if not isinstance(inputs, dict) or "color" not in inputs:
        raise TypeError("a model takes a (B, window, window) window tensor or a dict with one under \"color\"")
    windows = check_windows(inputs["color"], config.window)
    checked = {"color": windows}
    batch, side = len(windows), (config.window, config.window)
    if "age" in config.inputs:
        if "age" not in inputs:
            raise ValueError("this model sees ages: give its inputs as a dict with \"age\" (see rplacevit.data.model_inputs)")
        checked["age"] = check_indices(inputs["age"], "age", (batch, *side), AGE_VOCABULARY - 1)
    if "previous" in config.inputs:
        if "previous" not in inputs:
            raise ValueError("this model sees previous colors: give its inputs as a dict with \"previous\" (see rplacevit.data.model_inputs)")
        checked["previous"] = check_indices(inputs["previous"], "previous", (batch, *side), OUTSIDE)
    if "placer" in config.inputs:
        if "placer_count" not in inputs:
            inputs = {**inputs, **unknown_placer(batch, config.placer_k, windows.device)}
        k = (batch, config.placer_k)
        checked["placer_colors"] = check_indices(inputs["placer_colors"], "placer_colors", k, OUTSIDE)
        checked["placer_ages"] = check_indices(inputs["placer_ages"], "placer_ages", k, AGE_VOCABULARY - 1)
        checked["placer_count"] = check_indices(inputs["placer_count"], "placer_count", (batch,), PLACER_UNKNOWN)
    if "users" in config.inputs:
        if "users" not in inputs:
            inputs = {**inputs, **unknown_users(windows, config.user_features)}
        vectors = inputs["user_vectors"]
        if vectors.dim() != 2 or vectors.shape[1] != config.user_features or len(vectors) == 0 or not vectors.is_floating_point():
            raise ValueError(f"user_vectors of shape {tuple(vectors.shape)}: expected (M ≥ 1, {config.user_features}) floats")
        checked["users"] = check_indices(inputs["users"], "users", (batch, *side), len(vectors) - 1)
        checked["user_vectors"] = vectors.float()
    return checked


def check_indices(values: torch.Tensor, name: str, shape: tuple, high: int) -> torch.Tensor:
    """``values`` as int64 after checking its shape and that it lies in 0..high (a device-side
    assertion on a GPU, as :func:`check_windows` does)."""
    if values.is_floating_point() or values.is_complex():
        raise TypeError(f"{name} must hold integers, not {values.dtype}")
    if tuple(values.shape) != tuple(shape):
        raise ValueError(f"{name} of shape {tuple(values.shape)}: expected {tuple(shape)}")
    if values.numel():
        low, top = torch.aminmax(values)
        if values.device.type != "cpu" and hasattr(torch, "_assert_async"):
            torch._assert_async((low >= 0) & (top <= high), f"{name} outside 0..{high}")
        elif low < 0 or top > high:
            raise ValueError(f"{name} values {int(low)}..{int(top)}: expected 0..{high}")
    return values.long()


class WindowModel(nn.Module):
    """What ColorModel and TimeModel share: the config, the trunk, a Linear head of
    ``outputs`` features and the weight initialisation."""

    kind: str
    outputs: int

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.kind != self.kind:
            raise ValueError(f"a {config.kind} model config was given to {type(self).__name__}")
        self.config = config
        self.trunk = Trunk(config)
        self.head = nn.Linear(config.d_model, self.outputs)
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding, nn.EmbeddingBag)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear):
                nn.init.zeros_(module.bias)
        for name, parameter in self.named_parameters():
            if name.endswith("proj.weight"):
                # GPT-2's scaling: each block adds two residual branches, so they start smaller in
                # deeper models to keep the variance of the residual stream steady.
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * config.blocks))


class ColorModel(WindowModel):
    """The inputs → (B, 32) logits of the color the centre pixel
    (row and column window // 2) takes next."""

    kind, outputs = "color", PALETTE_SIZE

    def forward(self, inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        tokens = self.trunk(inputs)
        read = tokens[:, 0] + tokens[:, self.config.event_token] if self.config.pixel_head else tokens[:, 0]
        return self.head(read)

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss against (B,) int64 target colors: cross-entropy."""
        return F.cross_entropy(output.float(), targets)


class TimeModel(WindowModel):
    """The inputs → (B, centre, centre), for each central pixel: with ``time_objective`` "mse",
    the predicted time until it next changes as a fraction of the horizon in [0, 1] (a sigmoid
    output; targets are capped at 1.0, i.e. "not within the horizon"); with "bce", the logit of
    the probability that it changes within the horizon. :meth:`time_fraction` reads both the
    same way."""

    kind, outputs = "time", 1

    def forward(self, inputs: torch.Tensor | dict[str, torch.Tensor]) -> torch.Tensor:
        c = self.config.centre
        output = self.head(self.trunk(inputs)[:, 1 : 1 + c * c])
        return (torch.sigmoid(output) if self.config.time_objective == "mse" else output).view(-1, c, c)

    def time_fraction(self, output: torch.Tensor) -> torch.Tensor:
        """The output as a time-like score in [0, 1], lower = sooner: the predicted fraction of
        the horizon ("mse"), or 1 − the probability of a change within it ("bce")."""
        return output if self.config.time_objective == "mse" else 1 - torch.sigmoid(output)

    def loss(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training loss against (B, centre, centre) capped time targets."""
        if self.config.time_objective == "mse":
            return F.mse_loss(output.float(), targets)
        return F.binary_cross_entropy_with_logits(output.float(), (targets < 1).float())


MODELS = {model.kind: model for model in (ColorModel, TimeModel)}


def build_model(config: ModelConfig) -> WindowModel:
    """A freshly initialised ColorModel or TimeModel, as ``config.kind`` says; MemoryError
    naming its size when its weights do not fit (torch's allocator raises a RuntimeError)."""
    try:
        return MODELS[config.kind](config)
    except RuntimeError as error:
        if not isinstance(error, torch.cuda.OutOfMemoryError) and "allocate" not in str(error):  # the CPU's says "can't allocate"
            raise
        raise MemoryError(f"out of memory: the weights of a {config.kind} model with `d_model` {config.d_model}, `blocks` "
                          f"{config.blocks}, `d_ff` {config.d_ff} and `window` {config.window} do not fit") from None


#: Parameters without weight decay besides the 1-D ones (biases, norm gains, token types): the
#: cls token and the learned positions, as timm's Vision Transformer exempts them.
NO_WEIGHT_DECAY = ("cls_token", "pixel_positions", "patch_positions", "placer_positions")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """The optimizer's two parameter groups: the weight matrices and embeddings with
    ``weight_decay``, the rest (see :data:`NO_WEIGHT_DECAY`) without."""
    decayed, exempt = [], []
    for name, parameter in model.named_parameters():
        (exempt if parameter.ndim < 2 or name.rsplit(".", 1)[-1] in NO_WEIGHT_DECAY else decayed).append(parameter)
    return [{"params": decayed, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0}]


def parameter_count(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as sinusoidal positions excluded)."""
    return sum(parameter.numel() for parameter in model.parameters())


#: What a stored config that lacks a field meant when it was saved: the field did not exist yet.
BEFORE_FIELDS = {"pixel_head": False}


def to_checkpoint(model: WindowModel) -> dict:
    """``{"kind", "config", "state_dict"}`` of plain types and tensors, loadable by
    ``torch.load(weights_only=True)``; a training loop may add keys (optimizer, step)."""
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model prefixes its keys
    return {"kind": model.kind, "config": asdict(model.config), "state_dict": model.state_dict()}


def load_file(path: str | os.PathLike[str], map_location: str | torch.device = "cpu"):
    """What ``torch.save`` wrote to ``path``, loaded with ``weights_only=True``: tensors and plain
    types only, so a crafted file can never run code. Raises FileNotFoundError for a missing file
    and ValueError naming the file for anything else that cannot be loaded."""
    name = os.fspath(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about foreign pickle protocols on stderr
            return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as error:
        if "Unsupported global" in str(error):
            raise ValueError(f"{name}: refused, it holds objects that are not plain data (loading it could run code); "
                             "it is not an rplacevit checkpoint") from None
        raise ValueError(f"{name} is not an rplacevit checkpoint (not a torch file, or damaged)") from None
    except Exception as error:  # noqa: BLE001 - a truncated, empty or foreign file fails in many ways
        # (EOFError, RuntimeError, IndexError, zipfile's, struct's…), and "[Errno 22]" for a
        # folder or a special file names nothing: the message says which file.
        raise ValueError(f"{name} is not an rplacevit checkpoint ({type(error).__name__}: {error})") from None


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict:
    """The dict of an rplacevit checkpoint file: ``kind``, ``config``, ``state_dict``, and what
    training added (``training``: the run's settings and split). Loads tensors only
    (``weights_only``; see :func:`load_file`). Raises FileNotFoundError for a missing file and
    ValueError naming a file that is not an rplacevit checkpoint."""
    checkpoint = load_file(path, map_location)
    check_checkpoint(checkpoint, os.fspath(path))
    return checkpoint


def check_checkpoint(checkpoint, name: str) -> None:
    """ValueError naming ``name`` unless ``checkpoint`` has the shape :func:`to_checkpoint` and
    training give it (the weights themselves are checked against the config by :func:`load_model`)."""
    if not (isinstance(checkpoint, dict) and {"kind", "config", "state_dict"} <= checkpoint.keys()):
        raise ValueError(f"{name} is not an rplacevit checkpoint (no kind, config and state_dict keys)")
    if not isinstance(checkpoint["config"], dict):
        raise ValueError(f"{name} is not an rplacevit checkpoint: its config is a {type(checkpoint['config']).__name__}, not a dict")
    weights = checkpoint["state_dict"]
    if not (isinstance(weights, dict) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in weights.items())):
        raise ValueError(f"{name} is not an rplacevit checkpoint: its state_dict is not a dict of named tensors")
    training = checkpoint.get("training")
    if training is not None:
        times_ok = isinstance(training, dict) and all(
            training.get(key) is None or (isinstance(training[key], int) and not isinstance(training[key], bool))
            for key in ("until", "val_from", "horizon_ms"))
        if not times_ok:
            raise ValueError(f"{name} is not an rplacevit checkpoint: its training record is not a dict with integer times")


def load_model(
    source: str | os.PathLike[str] | dict,
    map_location: str | torch.device = "cpu",
    expect_kind: str | None = None,
    name: str | None = None,
) -> WindowModel:
    """The model of a checkpoint file (or of a dict from :func:`to_checkpoint` or
    :func:`read_checkpoint`), rebuilt from its stored config, on device ``map_location``, in
    eval mode. ``name`` names a dict in error messages (a file is named by its path).

    Raises ValueError when ``source`` is not an rplacevit model checkpoint (its weights are
    checked against its config before anything is allocated, so a config asking for terabytes
    fails as fast as a missing key), or when ``expect_kind`` ("color" or "time") is given and the
    checkpoint holds the other kind.
    """
    if isinstance(source, dict):
        name, checkpoint = name or "checkpoint", source
        check_checkpoint(checkpoint, name)
    else:
        name, checkpoint = os.fspath(source), read_checkpoint(source, map_location)
    try:
        config = ModelConfig(**{**BEFORE_FIELDS, **checkpoint["config"]})
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} is not an rplacevit checkpoint: bad config ({error})") from error
    if expect_kind is not None and config.kind != expect_kind:
        raise ValueError(f"{name} is a {config.kind} model checkpoint, a {expect_kind} model is expected")
    check_weights(config, checkpoint["state_dict"], name)
    model = build_model(config)
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(map_location).eval()


def check_weights(config: ModelConfig, weights: dict, name: str) -> None:
    """ValueError naming ``name`` unless ``weights`` has exactly the names and shapes of a model
    built from ``config``: compared with a model on the meta device, which allocates nothing."""
    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in build_model(config).state_dict().items()}
    given = {key: tuple(value.shape) for key, value in weights.items()}
    problems = [f"missing {key}" for key in expected.keys() - given.keys()]
    problems += [f"unexpected {key}" for key in given.keys() - expected.keys()]
    problems += [f"{key} has shape {given[key]}, the config needs {expected[key]}" for key in expected.keys() & given.keys()
                 if given[key] != expected[key]]
    if problems:
        shown = "; ".join(sorted(problems)[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
        raise ValueError(f"{name}: its weights do not fit its config ({shown})")


def model_on(source: str | os.PathLike[str] | WindowModel, kind: str, device: torch.device) -> tuple[WindowModel, dict | None, str]:
    """``(model, training record, name)`` of a checkpoint file, or of a model object: the
    ``kind`` model on ``device`` in eval mode, what its training recorded (``training``: the run's
    settings and split; None for an object or a checkpoint without one), and a name for reports.
    Raises FileNotFoundError for a missing file and ValueError for anything but a ``kind`` model."""
    if isinstance(source, nn.Module):
        if getattr(source, "kind", None) != kind:
            raise ValueError(f"a {kind} model is expected, not {type(source).__name__}")
        return source.to(device).eval(), None, f"{type(source).__name__} object"
    checkpoint = read_checkpoint(source, device)
    name = os.fspath(source)
    return load_model(checkpoint, device, expect_kind=kind, name=name), checkpoint.get("training"), name
