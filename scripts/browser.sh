#!/usr/bin/env bash
# Headless Chromium for the HTML report's screenshot test (Debian: chromium, chromium-driver).
# Does nothing when it is already installed.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
echo "installing chromium for the report screenshot test" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium chromium-driver >/dev/null
/usr/bin/chromium --version >&2
