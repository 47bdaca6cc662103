#!/usr/bin/env bash
# Make sure a Chromium browser is installed and print the path of its binary.
#
# The pack's PDF (crm-reports run --pdf) and the browser tests drive a headless
# Chromium. This script is idempotent: when chromium, chromium-browser or google-chrome
# is already on PATH (or CRM_CHROMIUM names an executable) it only prints the path;
# otherwise it installs Debian's chromium package with apt-get (as root, or through
# sudo when that works without a password prompt).
#
#   bash scripts/install_chromium.sh      # prints e.g. /usr/bin/chromium
set -euo pipefail

find_browser() {
    if [[ -n "${CRM_CHROMIUM:-}" ]]; then
        if [[ -x "$CRM_CHROMIUM" ]]; then
            echo "$CRM_CHROMIUM"
            return 0
        fi
        echo "install_chromium: CRM_CHROMIUM=$CRM_CHROMIUM is not an executable file" >&2
        exit 1
    fi
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        if command -v "$name" >/dev/null 2>&1; then
            command -v "$name"
            return 0
        fi
    done
    return 1
}

if find_browser; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium: no Chromium found and no apt-get on this system; install Chromium" \
         "with the system's package manager or set CRM_CHROMIUM to its binary" >&2
    exit 1
fi

SUDO=()
if [[ "$(id -u)" != "0" ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        echo "install_chromium: no Chromium found; run as root: apt-get install chromium" >&2
        exit 1
    fi
fi

echo "install_chromium: installing Debian's chromium package (apt-get)" >&2
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -q >&2
"${SUDO[@]}" apt-get install -y -q --no-install-recommends chromium fonts-liberation >&2

if ! find_browser; then
    echo "install_chromium: apt-get installed chromium but no chromium binary is on PATH" >&2
    exit 1
fi
