#!/usr/bin/env bash
# Runs every test of Sluice: the Rust workspace's tests, then the compatibility tests that drive
# the real `sluice` binary with the real clients (elasticsearch, opensearch-py, boto3, …).
# Python packages go into .venv-test, created on first use. Among the compatibility tests,
# tests/python/test_readme.py runs every example of README.md against the debug binary, in a
# virtualenv of its own filled from PyPI by the README's own lines, on ports 9200 and 4566.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv-test/bin/python ]; then
    python3 -m venv .venv-test
fi
.venv-test/bin/pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
# npm's aws-lambda-ric for the Node.js Lambda test, and kinesalite (a Kinesis API in Node.js)
# for the external-stream tests; aws-lambda-ric's install builds a native module (several
# minutes, with cmake and the autotools), so it is done once and kept in tests/node/node_modules.
if [ ! -f tests/node/node_modules/aws-lambda-ric/dist/rapid-client.node ] \
    || [ ! -f tests/node/node_modules/kinesalite/index.js ]; then
    npm install --prefix tests/node --no-audit --no-fund --foreground-scripts
fi

cargo build --workspace --all-targets
cargo test --workspace
SLUICE_BIN="$PWD/target/debug/sluice" .venv-test/bin/python -m pytest tests/python -q -p no:cacheprovider
