"""Runs one training in its own process, for the tests that interrupt a run or launch several
processes (torchrun). Usage: python train_runner.py CONFIG_JSON [--resume]. Each process writes
the SHA-256 of its final weights to OUT/weights-rank{RANK}.txt."""

import hashlib
import json
import os
import sys

import torch

from rplacevit.train import TrainConfig, train

torch.set_num_threads(1)
config = TrainConfig(**json.loads(sys.argv[1]))
model = train(config, resume="--resume" in sys.argv, progress=False)
digest = hashlib.sha256()
for name, tensor in sorted(model.state_dict().items()):
    digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
rank = os.environ.get("RANK", "0")
with open(os.path.join(config.out, f"weights-rank{rank}.txt"), "w") as f:
    f.write(digest.hexdigest())
