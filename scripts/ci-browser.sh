#!/usr/bin/env bash
# Runs the checks that need a real browser or promtool (ignored in the plain test run):
#   - t70_browser: headless Chromium against a real node (wallboard vs API, agent desktop)
#   - t70_observability: promtool check rules + promtool check metrics on a real scrape
# Screenshots land in target/tmp/ui-screenshots/ (git-ignored; CALLGRID_SCREENSHOTS overrides).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --drills
cargo test -p callgrid-node --locked --test t70_browser --test t70_observability -- --ignored
echo "ci-browser: screenshots in ${CALLGRID_SCREENSHOTS:-target/tmp/ui-screenshots}"
