#!/usr/bin/env bash
# The Debian packages `npm test` needs beside Node. Installs the missing ones when it can
# (root with apt-get); otherwise stops at once and prints the exact command to run.
set -euo pipefail
need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "$1" ]; }
# tests generate certificates; control converts PFX uploads
have openssl || need+=(openssl)
# the real-world HTML/CSS corpus of the link translation tests
[ -d /usr/share/debian-reference ] || need+=(debian-reference-en)
# the peer in `postern loadtest --compare` (an nginx two-hop chain), and its load generator
have /usr/sbin/nginx || need+=(nginx-light)
have /usr/bin/wrk || need+=(wrk)
# browser tests (driven by playwright-core, which never downloads a browser of its own)
have /usr/bin/chromium || need+=(chromium)
# HTTP/2 load against the HTTPS edge (h2load)
have h2load || need+=(nghttp2-client)
# a real third-party app behind the edge in the browser tests (its kernel needs ipykernel)
have /usr/bin/jupyter-notebook || need+=(jupyter-notebook python3-ipykernel)
# the shared control store and the engines' shared state in the scale-out tests
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
have /usr/bin/redis-server || need+=(redis-server)
# the load balancer in front of several engines and control replicas, as users run it
have /usr/sbin/haproxy || need+=(haproxy)
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" = 0 ] && have apt-get; then
  echo "npm test: installing Debian packages: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need[@]}" >&2
  exit 0
fi
echo "npm test needs these Debian packages: ${need[*]}" >&2
echo "install them with:  sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
exit 1
