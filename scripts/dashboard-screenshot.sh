#!/usr/bin/env bash
# Regenerates docs/dashboard.png, the README's screenshot of the dashboard: runs the dashboard example
# (two busy queues) for a while, then has headless Chromium take a picture of the emails queue's page.
# Needs Debian's chromium (`apt-get install chromium`). Run from anywhere: `bash scripts/dashboard-screenshot.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

addr="127.0.0.1:${DASHBOARD_PORT:-9099}"
cargo build --features dashboard --example dashboard
target/debug/examples/dashboard --addr "$addr" --for 40 >/dev/null &
example=$!
trap 'kill $example 2>/dev/null || true' EXIT

# Let the charts collect samples (one every 2 s) and the dead letters pile up.
sleep 30
chromium --headless --no-sandbox --disable-gpu --no-first-run --disable-background-networking \
  --hide-scrollbars --window-size=1100,1300 --screenshot=docs/dashboard.png "http://$addr/queues/emails"
echo "wrote docs/dashboard.png"
