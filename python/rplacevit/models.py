"""The two Vision Transformers: :class:`ColorModel` (which color the centre pixel takes next) and
:class:`TimeModel` (how soon each central pixel changes), both built from a :class:`ModelConfig`.

A window is a ``(B, window, window)`` integer tensor (uint8 or int64) of palette indices 0..31,
with OUTSIDE (32) for cells off the canvas; the event's pixel is at row and column ``window // 2``.
The trunk sees it as tokens::

    [cls] + centre² pixel tokens (the central centre×centre pixels, one token each)
          + (window/patch)² patch tokens (the whole window in patch×patch squares; optional)

then pre-norm Transformer blocks and a final LayerNorm. The color head reads the cls token;
the time head reads every pixel token. Checkpoints carry their config (:func:`to_checkpoint`,
:func:`load_model`), so no hyperparameter is ever typed twice.
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
# imports nothing from the package and loads without the Rust extension.
PALETTE_SIZE = 32
OUTSIDE = 32
VOCABULARY = PALETTE_SIZE + 1  # the 32 colors and OUTSIDE

KINDS = ("color", "time")
POSITIONS = ("learned", "sinusoidal")

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

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"kind {self.kind!r}: expected one of {KINDS}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions {self.positions!r}: expected one of {POSITIONS}")
        for name in ("window", "centre", "patch", "d_model", "heads", "blocks", "d_ff"):
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

    @classmethod
    def preset(cls, name: str, kind: str, **overrides) -> ModelConfig:
        """The config of preset ``name`` (see :data:`PRESETS`) for ``kind``; ``overrides`` replace
        any field, e.g. ``ModelConfig.preset("tiny", "color", window=16, centre=4)``."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: expected one of {tuple(PRESETS)}")
        return cls(kind=kind, **{**PRESETS[name], **overrides})

    @property
    def centre_start(self) -> int:
        """First row (and column) of the centre square in the window: 24 for 64/16."""
        return (self.window - self.centre) // 2


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
    """(B, window, window) int64 palette indices → (B, (window/patch)², d_model) patch tokens.

    The same map as a bias-free Linear layer on one-hot patches (patch²·33 inputs), without the
    one-hot: row ``cell·33 + color`` of the table is the weight column that cell's one-hot bit
    would select, so a patch's token is the sum of its cells' rows. The patch token type
    embedding plays the part of the bias.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.patch = config.patch
        self.table = nn.EmbeddingBag(config.patch**2 * VOCABULARY, config.d_model, mode="sum")
        self.register_buffer("cell_offsets", torch.arange(config.patch**2) * VOCABULARY, persistent=False)

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        batch, side, _ = windows.shape
        p, n = self.patch, side // self.patch
        cells = windows.reshape(batch, n, p, n, p).transpose(2, 3).reshape(batch * n * n, p * p)
        return self.table(cells + self.cell_offsets).view(batch, n * n, -1)


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
    """(B, window, window) palette indices → (B, 1 + centre² [+ (window/patch)²], d_model)
    normalised tokens: cls first, then the pixel tokens in row-major order, then the patches."""

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

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        windows = check_windows(windows, self.config.window)
        batch, start, c = len(windows), self.config.centre_start, self.config.centre
        centre = windows[:, start : start + c, start : start + c].reshape(batch, c * c)
        pixels = self.pixel_embedding(centre) + self.pixel_positions + self.pixel_type
        tokens = [self.cls_token.expand(batch, -1, -1), pixels]
        if self.config.periphery:
            tokens.append(self.patch_embedding(windows) + self.patch_positions + self.patch_type)
        x = self.dropout(torch.cat(tokens, dim=1))
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


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
    """(B, window, window) palette indices → (B, 32) logits of the color the centre pixel
    (row and column window // 2) takes next."""

    kind, outputs = "color", PALETTE_SIZE

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.head(self.trunk(windows)[:, 0])


class TimeModel(WindowModel):
    """(B, window, window) palette indices → (B, centre, centre) predicted time until each
    central pixel next changes, as a fraction of the horizon in [0, 1] (a sigmoid output;
    targets are capped at 1.0, i.e. "not within the horizon")."""

    kind, outputs = "time", 1

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        c = self.config.centre
        pixels = self.trunk(windows)[:, 1 : 1 + c * c]
        return torch.sigmoid(self.head(pixels)).view(-1, c, c)


MODELS = {model.kind: model for model in (ColorModel, TimeModel)}


def build_model(config: ModelConfig) -> WindowModel:
    """A freshly initialised ColorModel or TimeModel, as ``config.kind`` says."""
    return MODELS[config.kind](config)


#: Parameters without weight decay besides the 1-D ones (biases, norm gains, token types): the
#: cls token and the learned positions, as timm's Vision Transformer exempts them.
NO_WEIGHT_DECAY = ("cls_token", "pixel_positions", "patch_positions")


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
        config = ModelConfig(**checkpoint["config"])
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
