#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Installs the Debian 12 packages lurk needs to build, test and run its
# demo.  Idempotent: installs only what is missing, so it is cheap to call
# from every entry point (tests/quickstart.sh, tests/check.sh, .ci/run).
set -euo pipefail

packages=(
    # build
    build-essential meson ninja-build pkgconf
    libssl-dev libcurl4-openssl-dev libjansson-dev libevent-dev check
    # run and test with real peers
    openssl ca-certificates curl gnutls-bin nginx haproxy procps iproute2
    python3
    # fuzzing (tests/fuzz/run.sh): clang, libFuzzer, the sanitizers' symbolizer
    clang libclang-rt-14-dev llvm
)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "lurk: missing packages: ${missing[*]}" >&2
    echo "lurk: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "lurk: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
