#!/usr/bin/env bash
# README command 1: set up, make the demo dataset, render augmented items from it, and (once
# trained) evaluate. Everything lands under demo/ (override with DEMO_DIR).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
DEMO_DIR=${DEMO_DIR:-demo}
BIN=.venv/bin

$BIN/msaug demo-data "$DEMO_DIR/sources" --tracks 12 --seconds 30 --seed 0
$BIN/msaug render --root "$DEMO_DIR/sources" --out "$DEMO_DIR/augmented" \
  --mode mix:coherent=0.5,incoherent=0.5 --n 48 --seconds 10 --seed 0
echo
echo "demo sources:      $DEMO_DIR/sources (MUSDB18-HQ layout)"
echo "augmented dataset: $DEMO_DIR/augmented (manifest in $DEMO_DIR/augmented/manifest)"
