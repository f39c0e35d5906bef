#!/usr/bin/env bash
# `make fuzz`: every payment-provider parser under cargo-fuzz for FUZZ_SECONDS each
# (default 20). Runs on stable Rust: libFuzzer needs no sanitizer (`--sanitizer none`)
# and RUSTC_BOOTSTRAP=1 lets stable accept the flags cargo-fuzz passes. cargo-fuzz is
# installed once into ~/.cache/ocop-market/cargo-fuzz. Seeds (fuzz/seeds/<target>) are
# the unit tests' vectors; what the fuzzer learns stays in fuzz/corpus (not committed),
# a crash lands in fuzz/artifacts/<target>/ and fails the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

SECONDS_EACH=${FUZZ_SECONDS:-20}
ROOT="$HOME/.cache/ocop-market/cargo-fuzz"
export PATH="$ROOT/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null; then
  echo "fuzz: installing cargo-fuzz into $ROOT (once)"
  cargo install cargo-fuzz --locked --root "$ROOT"
fi
export RUSTC_BOOTSTRAP=1
TARGETS=(vnpay_ipn momo_ipn zalopay_callback vietqr_webhook vietqr_payload)
cargo fuzz build --sanitizer none -O
for target in "${TARGETS[@]}"; do
  mkdir -p "corpus/$target"
  echo "fuzz: $target for ${SECONDS_EACH}s"
  cargo fuzz run --sanitizer none -O "$target" "corpus/$target" "seeds/$target" -- \
    -max_total_time="$SECONDS_EACH" -print_final_stats=1 2>&1 | grep -E '^(Done|stat::number_of_executed_units|==|SUMMARY)|panicked' || true
  if compgen -G "artifacts/$target/crash-*" >/dev/null; then
    echo "fuzz: $target crashed; see fuzz/artifacts/$target/" >&2
    exit 1
  fi
done
echo "fuzz: no crashes in ${#TARGETS[@]} targets"
