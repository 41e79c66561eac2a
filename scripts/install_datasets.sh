#!/usr/bin/env bash
# Installs the second real dataset the tests and `python -m training fit --data fashion-mnist` use: Debian's
# dataset-fashion-mnist (IDX files under /usr/share/datasets/fashion-mnist; checksums verified by training/mnist.py).
#   scripts/install_datasets.sh           # root (or sudo) for apt
# MNIST itself comes from ../shared/data/mnist or `python -m training fetch-mnist --dest DIR`.
set -euo pipefail
DIR=/usr/share/datasets/fashion-mnist
if [ ! -f "$DIR/t10k-labels-idx1-ubyte.gz" ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq --no-install-recommends dataset-fashion-mnist >/dev/null
fi
ls "$DIR"
