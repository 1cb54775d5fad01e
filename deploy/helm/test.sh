#!/usr/bin/env bash
# Lint and render the Helm chart with Helm's own code, and check the manifests (also the
# plain ones in deploy/kubernetes). See check_manifests.py for what is checked.
#
# Helm itself is not packaged in the registries this project can reach; helm-python-sdk
# (PyPI) ships the official Helm v4 Go SDK as a shared library, whose lint and offline
# render are what `helm lint` and `helm template` run. It is installed into a virtualenv.
#
#   bash deploy/helm/test.sh
#   EVENTER_BIN=target/debug/eventer bash deploy/helm/test.sh   # also `eventer check` every rendering
#
# Environment: HELM_TEST_VENV (default target/helm-test-venv), EVENTER_BIN.
set -euo pipefail
cd "$(dirname "$0")/../.."

venv="${HELM_TEST_VENV:-target/helm-test-venv}"
python="${PYTHON:-python3}"
requirements=(helm-python-sdk==0.2.2 PyYAML==6.0.3)

if ! "$venv/bin/python" -c 'import helm_python, yaml' 2>/dev/null; then
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${requirements[@]}"
fi
"$venv/bin/python" -c 'import helm_python as h; print("helm SDK", h.helm_sdk_version(), "via helm-python-sdk", h.helm_c_version())'

if [[ -n "${EVENTER_BIN:-}" ]]; then
    EVENTER_BIN="$(cd "$(dirname "$EVENTER_BIN")" && pwd)/$(basename "$EVENTER_BIN")"
    export EVENTER_BIN
fi
exec "$venv/bin/python" deploy/helm/check_manifests.py
