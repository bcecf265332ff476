#!/usr/bin/env bash
# Installs the Debian photo packages the data engine draws sharp images from, where absent.
# Needs root or sudo; without them it only warns (deblurring and most tests do not need them).
set -u
# train: mate-backgrounds; val: lomiri-wallpapers-20.04, ukui-wallpapers; test: lomiri-wallpapers-16.04
packages=(mate-backgrounds lomiri-wallpapers-20.04 ukui-wallpapers lomiri-wallpapers-16.04)
missing=()
for package in "${packages[@]}"; do
    dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "warning: apt-get not found; install ${missing[*]} to use the Debian photo sources" >&2
    exit 0
fi
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo_cmd=(sudo); else
        echo "warning: not root; run: apt-get install ${missing[*]}" >&2
        exit 0
    fi
fi
echo "installing photo sources: ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -qq >/dev/null \
    && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null \
    || echo "warning: could not install ${missing[*]}" >&2
