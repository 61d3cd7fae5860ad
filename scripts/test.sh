#!/usr/bin/env bash
# The whole test suite, as the README says: installs what the tests need when missing
# (Debian packages; Python packages in a virtual environment, .venv), then checks formatting
# and lints and runs every test, including the end-to-end tests with real Prometheus processes
# and the promtool rule tests.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi

need_apt=()
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)   # tests/page_chromium.rs: the live page in headless Chromium
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Python peers (OpenTelemetry SDK, aiosmtpd, scikit-learn, onnxruntime, pytest) live in a virtual
# environment: Debian's own python3 refuses pip installs (PEP 668, externally managed). Re-runs
# reuse it. DWCP_ANOMALY_PYTHON names its interpreter for the tests and for the service's ONNX
# Runtime probe alike.
VENV="${DWCP_ANOMALY_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating the Python virtual environment $VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    rm -rf "$VENV"
    echo "==> installing Debian package: python3-venv"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
fi
export DWCP_ANOMALY_PYTHON="$(cd "$VENV" && pwd)/bin/python"
shopt -s nullglob
reqs=(training/requirements*.txt)
if [ ${#reqs[@]} -gt 0 ]; then
  echo "==> installing Python packages from ${reqs[*]} into $VENV"
  for r in "${reqs[@]}"; do "$DWCP_ANOMALY_PYTHON" -m pip install -q --disable-pip-version-check -r "$r"; done
fi

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --quiet -- -D warnings
echo "==> cargo test"
cargo test --all-targets --quiet
echo "==> doc tests and cargo doc (warnings are errors)"
cargo test --doc --quiet
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
echo "==> promtool and amtool: rules and example configs"
promtool check rules rules/dwcp-anomaly.rules.yml
promtool test rules rules/tests.yml
promtool check config --syntax-only examples/prometheus.yml examples/prometheus-scores.yml examples/local/prometheus.yml
amtool check-config examples/alertmanager.yml examples/local/alertmanager.yml
if [ -d training/tests ]; then
  echo "==> pytest training/tests"
  "$DWCP_ANOMALY_PYTHON" -m pytest -q training/tests
fi
echo "==> all tests passed"
