"""The two Vision Transformers: shapes, presets and parameter counts, input checks, checkpoints
that rebuild themselves, and a tiny model of each kind learning a synthetic rule on the CPU."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

# Loaded by path: models.py imports nothing from the package, so these tests run even where the
# package's Rust extension is not built (e.g. with --noconftest).
_PATH = Path(__file__).parents[1] / "python" / "rplacevit" / "models.py"
_SPEC = importlib.util.spec_from_file_location("rplacevit_models", _PATH)
models = importlib.util.module_from_spec(_SPEC)
sys.modules[_SPEC.name] = models  # dataclasses look their module up while building ModelConfig
_SPEC.loader.exec_module(models)

OUTSIDE = models.OUTSIDE
# A window small enough that the learning tests train in seconds, with the same geometry rules.
SMALL_WINDOW = dict(window=16, centre=4, patch=4)


def random_windows(batch: int, window: int, seed: int = 0) -> torch.Tensor:
    """(batch, window, window) int64 palette indices, OUTSIDE included."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, OUTSIDE + 1, (batch, window, window), generator=generator)


@pytest.mark.parametrize("kind", models.KINDS)
@pytest.mark.parametrize("preset", ["tiny", "small"])
def test_forward_shapes_and_dtypes(preset, kind):
    torch.manual_seed(0)
    config = models.ModelConfig.preset(preset, kind)
    model = models.build_model(config).eval()
    assert isinstance(model, {"color": models.ColorModel, "time": models.TimeModel}[kind])
    windows = random_windows(2, config.window)
    with torch.no_grad():
        out = model(windows)
        assert torch.equal(out, model(windows.to(torch.uint8)))
    if kind == "color":
        assert out.shape == (2, models.PALETTE_SIZE)
    else:
        assert out.shape == (2, config.centre, config.centre)
        assert ((out > 0) & (out < 1)).all()


@pytest.mark.parametrize("positions", models.POSITIONS)
@pytest.mark.parametrize("periphery", [True, False])
@pytest.mark.parametrize("kind", models.KINDS)
def test_variants(kind, periphery, positions):
    config = models.ModelConfig.preset("tiny", kind, periphery=periphery, positions=positions)
    model = models.build_model(config)
    out = model(random_windows(3, config.window))
    assert out.shape == ((3, 32) if kind == "color" else (3, 16, 16))
    assert hasattr(model.trunk, "patch_embedding") == periphery
    # Learned positions are parameters (saved); sinusoidal ones derive from the config (not saved).
    assert ("trunk.pixel_positions" in model.state_dict()) == (positions == "learned")


@pytest.mark.parametrize("kind", models.KINDS)
@pytest.mark.parametrize(("preset", "expected"), [("small", 1.9e6), ("base", 85e6)])
def test_preset_parameter_counts(preset, expected, kind):
    for positions in models.POSITIONS:
        with torch.device("meta"):  # counts only: no memory, no initialisation
            model = models.build_model(models.ModelConfig.preset(preset, kind, positions=positions))
        assert abs(models.parameter_count(model) - expected) <= 0.1 * expected


def test_periphery_sees_outside_the_centre():
    """The color model's output depends on a far corner only through the patch tokens."""
    torch.manual_seed(0)
    windows = random_windows(1, 64)
    changed = windows.clone()
    changed[0, 0, 0] = (windows[0, 0, 0] + 1) % 32
    for periphery in (True, False):
        model = models.ColorModel(models.ModelConfig.preset("tiny", "color", periphery=periphery)).eval()
        with torch.no_grad():
            assert torch.equal(model(windows), model(changed)) != periphery


def test_patch_embedding_is_a_linear_map_of_one_hot_patches():
    """Oracle: flatten each 4×4 patch to 16 one-hot cells of 33 channels and multiply by the table."""
    torch.manual_seed(0)
    config = models.ModelConfig.preset("tiny", "color")
    embedding = models.PatchEmbedding(config)
    windows = random_windows(2, 64)
    patches = windows.reshape(2, 16, 4, 16, 4).permute(0, 1, 3, 2, 4).reshape(2, 256, 16)
    one_hot = torch.nn.functional.one_hot(patches, models.VOCABULARY).float().reshape(2, 256, 16 * 33)
    assert torch.allclose(embedding(windows), one_hot @ embedding.table.weight, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu(tmp_path):
    torch.manual_seed(0)
    model = models.build_model(models.ModelConfig.preset("tiny", "time")).eval()
    path = tmp_path / "time.pt"
    torch.save(models.to_checkpoint(model), path)
    on_cuda = models.load_model(path, map_location="cuda")
    windows = random_windows(4, 64).to(torch.uint8)
    with torch.no_grad():
        assert torch.allclose(on_cuda(windows.cuda()).cpu(), model(windows), atol=1e-4)


def test_sinusoidal_grids_share_the_window_geometry():
    """Pixel (r, c) of the centre square and the patch that contains it sit at nearby positions:
    both grids are placed by their cells' centres in window pixels."""
    trunk = models.build_model(models.ModelConfig.preset("tiny", "color")).trunk
    # Pixel (0, 0) of the centre is window cell (24, 24), centre (24.5, 24.5); patch (6, 6)
    # spans 24..28, centre (26, 26); far patch (0, 0) has centre (2, 2).
    pixel, patch, far = trunk.pixel_positions[0], trunk.patch_positions[6 * 16 + 6], trunk.patch_positions[0]
    expected = models.sinusoidal_positions(torch.tensor([24.5]), torch.tensor([24.5]), 32)[0]
    assert torch.allclose(pixel, expected)
    assert (pixel - patch).norm() < (pixel - far).norm()


def test_centre_crop_geometry():
    """Without the periphery the model sees exactly window rows and columns 24..39 (for 64/16)."""
    torch.manual_seed(0)
    config = models.ModelConfig.preset("tiny", "time", periphery=False)
    model = models.TimeModel(config).eval()
    assert config.centre_start == 24
    windows = random_windows(1, 64)
    cells = {(24, 24): True, (39, 39): True, (32, 32): True, (23, 30): False, (30, 40): False}
    for (row, col), seen in cells.items():
        changed = windows.clone()
        changed[0, row, col] = (windows[0, row, col] + 1) % 32
        with torch.no_grad():
            assert torch.equal(model(changed), model(windows)) != seen, (row, col)


def test_input_checks():
    model = models.build_model(models.ModelConfig.preset("tiny", "color"))
    windows = random_windows(2, 64)
    windows[0, 0, 0] = OUTSIDE
    model(windows)  # OUTSIDE is a valid cell
    with pytest.raises(ValueError, match=r"expected \(B, 64, 64\)"):
        model(windows[:, :32])
    with pytest.raises(ValueError, match=r"expected \(B, 64, 64\)"):
        model(windows[0])
    with pytest.raises(TypeError, match="integer palette indices"):
        model(windows.float())
    for bad in (OUTSIDE + 1, -1):
        windows[1, 5, 5] = bad
        with pytest.raises(ValueError, match="0..31 or OUTSIDE"):
            model(windows)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(kind="colour"), "kind"),
        (dict(positions="rope"), "positions"),
        (dict(window=64, patch=5), "multiple of patch"),
        (dict(centre=80), "larger than window"),
        (dict(centre=15), "parity"),
        (dict(d_model=30, heads=4), "multiple of heads"),
        (dict(d_model=6, heads=2, positions="sinusoidal"), "multiple of 4"),
        (dict(blocks=0, window=0), "positive integer"),
        (dict(dropout=1.0), "dropout"),
    ],
)
def test_config_validation(overrides, message):
    with pytest.raises(ValueError, match=message):
        replace(models.ModelConfig.preset("tiny", "color"), **overrides)


def test_config_kind_must_match_model_and_preset_exists():
    with pytest.raises(ValueError, match="time model config"):
        models.ColorModel(models.ModelConfig.preset("tiny", "time"))
    with pytest.raises(ValueError, match="unknown preset"):
        models.ModelConfig.preset("huge", "color")


@pytest.mark.parametrize("kind", models.KINDS)
@pytest.mark.parametrize("positions", models.POSITIONS)
def test_checkpoint_round_trip(tmp_path, kind, positions):
    torch.manual_seed(0)
    config = models.ModelConfig.preset("tiny", kind, positions=positions, dropout=0.1)
    model = models.build_model(config).eval()
    path = tmp_path / "model.pt"
    torch.save(models.to_checkpoint(model), path)
    loaded = models.load_model(path, expect_kind=kind)
    assert type(loaded) is type(model) and loaded.config == model.config and not loaded.training
    windows = random_windows(4, 64)
    with torch.no_grad():
        assert torch.equal(loaded(windows), model(windows))
    # A dict (e.g. one a training loop extended with its own keys) loads too.
    extended = {**models.to_checkpoint(model), "step": 7}
    assert torch.equal(models.load_model(extended)(windows), loaded(windows))


def test_load_model_errors(tmp_path):
    path = tmp_path / "time.pt"
    torch.save(models.to_checkpoint(models.build_model(models.ModelConfig.preset("tiny", "time"))), path)
    with pytest.raises(ValueError, match="is a time model checkpoint, a color model is expected"):
        models.load_model(path, expect_kind="color")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match="not an rplacevit checkpoint"):
        models.load_model(garbage)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not an rplacevit checkpoint"):
        models.load_model(text)
    plain = tmp_path / "state_dict.pt"
    torch.save(models.build_model(models.ModelConfig.preset("tiny", "color")).state_dict(), plain)
    with pytest.raises(ValueError, match="not an rplacevit checkpoint"):
        models.load_model(plain)
    with pytest.raises(FileNotFoundError):
        models.load_model(tmp_path / "missing.pt")


# Four colors (red, blue, black, white) make the synthetic windows.
COLORS = torch.tensor([2, 13, 27, 31])


def neighbour_majority_batch(generator: torch.Generator, batch: int, window: int):
    """Random windows of four colors whose centre pixel (window // 2) has a majority color among
    its 4 neighbours (3 or 4 of them agree); the target is that color as a palette index.
    The centre pixel itself is random, so copying it does not help."""
    cells = torch.randint(0, 4, (batch, window, window), generator=generator)
    majority = torch.randint(0, 4, (batch,), generator=generator)
    neighbours = majority[:, None].repeat(1, 4)
    odd_one = torch.randint(0, 4, (batch,), generator=generator)
    neighbours[torch.arange(batch), odd_one] = torch.randint(0, 4, (batch,), generator=generator)
    c = window // 2
    cells[:, [c - 1, c + 1, c, c], [c, c, c - 1, c + 1]] = neighbours
    return COLORS[cells], COLORS[majority]


def fit(model, batch, loss_of, steps: int) -> list[float]:
    """``steps`` AdamW steps (lr 3e-3) on ``batch()`` = (windows, targets); the losses."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        windows, targets = batch()
        loss = loss_of(model(windows), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize(("window", "centre"), [(16, 4), (15, 5), (8, 2), (3, 1)])
def test_the_event_token_is_the_event_pixels(window, centre):
    """Changing only the event's pixel (row and column window // 2) changes, among the trunk's
    pixel tokens before any block, exactly the one at ``event_token``."""
    config = models.ModelConfig.preset("tiny", "color", window=window, centre=centre, patch=1, periphery=False)
    trunk = models.ColorModel(config).eval().trunk
    seen = []
    trunk.blocks[0].register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    windows = torch.zeros((1, window, window), dtype=torch.long)
    other = windows.clone()
    other[0, window // 2, window // 2] = 5
    with torch.no_grad():
        trunk(windows), trunk(other)
    moved = (seen[0] - seen[1]).abs().sum(dim=2)[0]
    assert moved.nonzero().flatten().tolist() == [config.event_token]


@pytest.mark.parametrize(("pixel_head", "steps"), [(False, 200), (True, 400)])
def test_tiny_color_model_learns_neighbour_majority(pixel_head, steps):
    """With the head that also reads the event pixel's token the model needs about twice the
    steps here: the centre pixel is noise in this task, and that head starts out reading it."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    config = models.ModelConfig.preset("tiny", "color", **SMALL_WINDOW, pixel_head=pixel_head)
    model = models.ColorModel(config)
    fit(model, lambda: neighbour_majority_batch(generator, 64, config.window), torch.nn.functional.cross_entropy, steps)
    windows, targets = neighbour_majority_batch(generator, 1024, config.window)
    with torch.no_grad():
        accuracy = (model.eval()(windows).argmax(1) == targets).float().mean().item()
    best_constant = torch.bincount(targets).max().item() / len(targets)
    assert accuracy >= max(0.6, 2 * best_constant), (accuracy, best_constant)


def test_tiny_time_model_learns_per_pixel_rule():
    """Target: each central pixel's time is set by its own color (0.125, 0.375, 0.625, 0.875)."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    config = models.ModelConfig.preset("tiny", "time", **SMALL_WINDOW)
    model = models.TimeModel(config)
    start, c = config.centre_start, config.centre

    def batch():
        cells = torch.randint(0, 4, (64, config.window, config.window), generator=generator)
        return COLORS[cells], (cells[:, start : start + c, start : start + c] + 0.5) / 4

    losses = fit(model, batch, torch.nn.functional.mse_loss, 100)
    constant_guess = 1.25 / 16  # variance of the four equally likely targets
    assert sum(losses[-20:]) / 20 < 0.2 * constant_guess, (losses[0], losses[-20:])


def test_weight_decay_spares_biases_norms_tokens_and_positions():
    for positions in ("learned", "sinusoidal"):
        model = models.build_model(models.ModelConfig.preset("tiny", "color", positions=positions))
        decayed, exempt = models.parameter_groups(model, 0.05)
        assert (decayed["weight_decay"], exempt["weight_decay"]) == (0.05, 0.0)
        names = {id(p): n for n, p in model.named_parameters()}
        exempt_names = {names[id(p)] for p in exempt["params"]}
        assert {"trunk.cls_token", "trunk.pixel_type", "head.bias", "trunk.norm.weight"} <= exempt_names
        assert ("trunk.pixel_positions" in exempt_names) == (positions == "learned")
        assert all(names[id(p)].endswith("weight") and p.ndim == 2 for p in decayed["params"])
        assert len(decayed["params"]) + len(exempt["params"]) == len(list(model.parameters()))
