#!/usr/bin/env bash
# The whole test suite on a fresh machine: installs what the tests need when it is missing
# (the OpenID provider fixture's npm packages, Debian's redis-server), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || {
    echo "Node.js >= 20 is required for the OpenID provider fixture (tests/idp)" >&2
    exit 1
}
if ! command -v redis-server >/dev/null; then
    echo "== installing redis-server (Debian package) for the Redis tests"
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo_cmd apt-get install -y redis-server || {
        $sudo_cmd apt-get update && $sudo_cmd apt-get install -y redis-server
    }
fi
npm ci --prefix tests/idp --no-audit --no-fund
cargo test --all-features "$@"
