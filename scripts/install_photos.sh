#!/usr/bin/env bash
# Installs the Debian photo packages the data engine draws sharp images from, where absent.
# Needs root or sudo; without them it only warns (deblurring and most tests do not need them).
# train: mate-backgrounds; val: lomiri-wallpapers-20.04, ukui-wallpapers; test: lomiri-wallpapers-16.04
exec bash "$(dirname "$0")/apt_install.sh" "the data engine's photo sources" \
    mate-backgrounds lomiri-wallpapers-20.04 ukui-wallpapers lomiri-wallpapers-16.04
