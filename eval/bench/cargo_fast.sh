#!/usr/bin/env bash
# Runs cargo with our crate at opt-level 3 and without debug assertions, on the
# dev profile whose dependencies are already compiled at opt-level 3: fast
# enough to tune kernels without a full --release build of every dependency.
#   eval/bench/cargo_fast.sh bench --bench qlinear -- smollm2
set -euo pipefail
sub="$1"; shift
exec cargo "$sub" --profile dev \
  --config 'profile.dev.package.brandvoice.opt-level=3' \
  --config 'profile.dev.package.brandvoice.debug-assertions=false' \
  --config 'profile.dev.package.brandvoice.overflow-checks=false' "$@"
