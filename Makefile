# ocop-market — the two commands: `make run` and `make test`.
.PHONY: run test lint fmt fuzz contract-check deploy-check image container-check bench bench-short soak

## run: build, start PostgreSQL, the broker and the services, seed the catalogue (Ctrl-C stops)
run:
	bash tools/dev/run.sh

## test: every test against a fresh PostgreSQL and broker on ephemeral ports
test:
	bash tools/dev/test.sh

## bench: release build, PostgreSQL (fsync on) and the broker on free ports: pgbench and a stock librdkafka client, then the saga under ocop-loadgen (highest rate with p99 <= 250 ms, then half); writes docs/benchmarks.md
bench:
	bash tools/dev/bench.sh

## bench-short: the same, short (under a minute of load), for CI: asserts only that it completes and the books balance
bench-short:
	bash tools/dev/bench.sh --short

## soak: the saga at SOAK_RATE (10) orders/s for SOAK_MINUTES (10) while services are SIGKILLed, the broker paused, PostgreSQL crashed and a pool run dry (SOAK_SEED replays); then the books (load generator check + ocopctl audit)
soak:
	bash tools/dev/soak.sh

## lint: formatting, clippy (warnings are errors) and buf lint of the contract
lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --quiet -- -D warnings
	bash tools/dev/buf.sh lint

fmt:
	cargo fmt --all

## fuzz: each payment-provider parser (callbacks, VietQR payload) under cargo-fuzz for FUZZ_SECONDS (20) each; works on stable
fuzz:
	bash fuzz/run.sh

## deploy-check: render the Kubernetes overlays (kustomize), validate them (kubernetes-validate; Strimzi resources with @kubernetes-models/strimzi-kafka-operator), yamllint deploy/, check compose and the Dockerfile against the workspace
deploy-check:
	bash tools/dev/deploy-check.sh

## image: build deploy/docker/Dockerfile with podman (every stage, cargo-chef's dependency layer included) into ocop-market:<version>, scan it, print its size and build time; base images made locally once (no Docker engine or registry needed)
image:
	bash tools/dev/image.sh

## container-check: the image (its prebuilt-binaries target, from the release build) run as the Kubernetes manifests run it: migration step, the four services as read-only non-root containers, health SERVING, one order to CONFIRMED, SIGTERM drains within the grace period; plus the image scan
container-check:
	bash tools/dev/container-check.sh

## contract-check: validate docs/asyncapi.yaml (@asyncapi/cli) against the code and proto/, buf lint, buf breaking against proto/released/
contract-check:
	bash tools/dev/contract-check.sh
