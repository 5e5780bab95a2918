#!/usr/bin/env bash
# Make sure the Fashion-MNIST IDX files from Debian's dataset-fashion-mnist are installed.
# As root, install the package when it is missing; otherwise say how to get it.
# Usage: scripts/ensure-fashion-mnist.sh [--required]
set -u
dir=/usr/share/datasets/fashion-mnist
if [ -f "$dir/train-images-idx3-ubyte.gz" ] && [ -f "$dir/t10k-labels-idx1-ubyte.gz" ]; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian package dataset-fashion-mnist (Fashion-MNIST, 30 MB)..."
  if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  fi
  [ -f "$dir/train-images-idx3-ubyte.gz" ] && exit 0
fi
echo "Fashion-MNIST is not installed at $dir: run 'sudo apt-get install dataset-fashion-mnist'," >&2
echo "or download the four IDX files into a folder and pass --data FOLDER." >&2
[ "${1:-}" = "--required" ] && exit 1
echo "(tests that need Fashion-MNIST will be skipped)" >&2
exit 0
