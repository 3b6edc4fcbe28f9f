#!/usr/bin/env bash
# One-command GPU check (under 8 minutes on one GPU): model steps with and without AMP and
# gradient checkpointing, the loader against each model's appetite, and a one-process nccl
# DDP run; prints one Markdown table (benchmarks/gpu_check.py). Needs a CUDA build of
# torch==2.13.0 and the project installed: `bash scripts/setup.sh` where pip can reach PyPI,
# else an environment that has them (set PYTHON). Extra arguments go to gpu_check.py
# (`--device cpu --quick` checks the script itself on a CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
export PYTHONUNBUFFERED=1
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$PYTHON" -c "import torch, julius, soundfile, soxr, pedalboard" || {
  echo "gpu_check: the project's packages are missing for $PYTHON; run scripts/setup.sh or set PYTHON" >&2
  exit 2
}
exec timeout 480 "$PYTHON" benchmarks/gpu_check.py "$@"
