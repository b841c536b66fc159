#!/usr/bin/env bash
# clawdirector-setup: install the pinned Node.js and OpenClaw into /usr/local of a new sprite.
#
# Run by sprites/services.py through the Sprites exec API, before the sprite's golden
# checkpoint, as:  bash -c "<this file>" clawdirector-setup <node-version> <openclaw-version>
# Versions arrive as arguments (never pasted into the script text), so a setting can never
# inject shell. Idempotent: a re-run after a failure skips what is already installed.
#
# Why by hand: sprites have shipped an older Node (22.20 under nvm, npm's global bin not on
# PATH) and OpenClaw 2026.9.6 needs Node >=24.16.0 <25 || >=26.1.0 (the settings check it). Everything is called by absolute path
# because a Sprites exec or service given an `env` loses the default PATH.
set -euo pipefail

NODE_VERSION="${1:?node version}"
OPENCLAW_VERSION="${2:?openclaw version}"
PREFIX=/usr/local
OPENCLAW_HOME=/home/sprite/.openclaw
export PATH="$PREFIX/bin:/usr/bin:/bin:/usr/sbin:/sbin"

case "$(uname -m)" in
  x86_64) ARCH=x64 ;;
  aarch64 | arm64) ARCH=arm64 ;;
  *) echo "clawdirector-setup: unsupported architecture $(uname -m)" >&2; exit 1 ;;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo -n"; fi

if [ "$("$PREFIX/bin/node" --version 2>/dev/null || true)" != "v$NODE_VERSION" ]; then
  echo "==> Installing Node.js $NODE_VERSION"
  TMP="$(mktemp -d)"
  trap 'rm -rf "$TMP"' EXIT
  curl -fsSL --retry 3 \
    "https://nodejs.org/dist/v$NODE_VERSION/node-v$NODE_VERSION-linux-$ARCH.tar.xz" -o "$TMP/node.tar.xz"
  $SUDO tar -xJf "$TMP/node.tar.xz" -C "$PREFIX" --strip-components=1 \
    --exclude='*/CHANGELOG.md' --exclude='*/README.md' --exclude='*/LICENSE'
fi

# `openclaw --version` prints "OpenClaw 2026.9.6 (<commit>)": compare the version in it.
installed="$("$PREFIX/bin/openclaw" --version 2>/dev/null | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1 || true)"
if [ "$installed" != "$OPENCLAW_VERSION" ]; then
  echo "==> Installing openclaw@$OPENCLAW_VERSION"
  $SUDO "$PREFIX/bin/npm" install --global --prefix "$PREFIX" --no-fund --no-audit \
    "openclaw@$OPENCLAW_VERSION"
fi

# The config holds the gateway token: only the sprite user may read it.
mkdir -p "$OPENCLAW_HOME"
chmod 700 "$OPENCLAW_HOME"

echo "==> node $("$PREFIX/bin/node" --version), openclaw $("$PREFIX/bin/openclaw" --version)"
echo "==> OpenClaw set-up complete"
