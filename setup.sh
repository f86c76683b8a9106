#!/usr/bin/env bash
# Fresh set-up: a virtual environment in .venv with the CPU torch wheel first (a bare torch
# requirement would pull a multi-GB CUDA build), then fitter with its test, Ray and lint extras.
set -euo pipefail
cd "$(dirname "$0")"
python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[test,ray,lint]"
.venv/bin/python -m pip check
