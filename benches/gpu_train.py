"""GPU training benchmark: samples/s of the small and base presets with bf16 autocast and
scaled-dot-product attention, and the loader's share of the step (goal: under 10%).

    python benches/gpu_train.py [--data DATASET] [--inputs color,age,placer,users] [--task time]

Runs benches/train_step.py once per preset on CUDA; needs a GPU.
"""

import subprocess
import sys
from pathlib import Path

import torch

if not torch.cuda.is_available():
    sys.exit("gpu_train.py needs a CUDA device")
here = Path(__file__).parent
for preset, batch in (("small", 256), ("base", 128)):
    command = [sys.executable, str(here / "train_step.py"), "--preset", preset, "--device", "cuda", "--amp",
               "--batch-size", str(batch), "--steps", "30", *sys.argv[1:]]
    print("$", " ".join(command[1:]), flush=True)
    subprocess.run(command, check=True)
