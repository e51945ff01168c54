#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# test_exports.sh LURK.SO: the module exports exactly OSSL_provider_init.
set -u
syms=$(nm -D --defined-only "$1" | awk '{print $3}' | sort)
if [ "$syms" = "OSSL_provider_init" ]; then
    echo "ok   exports: $syms"
else
    echo "FAIL exports:"; echo "$syms"; exit 1
fi
