"""Deforming Autoencoder trainer (see training/train.py for the commands)."""

import os

# libgomp's default is to spin-wait between parallel regions. On a machine whose cores are shared (other
# processes, the data pipeline, a server beside the trainer) spinning threads steal the cores they wait for:
# measured here on 2 busy cores, 17 img/s spinning vs 108 img/s passive for the same training step. Passive
# waiting costs little on an idle machine. It must be set before torch loads OpenMP; users can override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
