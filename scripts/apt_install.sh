#!/usr/bin/env bash
# Usage: apt_install.sh PURPOSE PACKAGE...
# Installs the Debian packages that are absent, for PURPOSE (a few words for the messages).
# Needs apt-get and root or password-less sudo; without them it only warns and exits 0, because
# what needs these packages (the data engine's photo sources, the browser test) works or is
# skipped without them.
set -u
purpose=$1
shift
missing=()
for package in "$@"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: apt-get not found; install ${missing[*]} for $purpose" >&2
    exit 0
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo_cmd=(sudo); else
        echo "warning: not root; run: apt-get install ${missing[*]} (for $purpose)" >&2
        exit 0
    fi
fi
echo "installing ${missing[*]} for $purpose"
"${sudo_cmd[@]}" apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]} (for $purpose)" >&2
