#!/usr/bin/env bash
# Installs, only when missing, the Debian packages the interop tests and benchmarks drive:
# Postfix and Dovecot (reference servers, smtp-source; through shared/reference/install.sh, which
# keeps any system-wide daemon stopped), swaks, curl, isync (mbsync), fetchmail, rspamd and clamd
# (their system-wide services are stopped: the tests start private instances). Needs root; CI runs as root.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
ref="$here/../shared/reference"
need=()
for p in swaks libnet-ssleay-perl libio-socket-ssl-perl curl isync fetchmail rspamd clamav-daemon; do
  dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || need+=("$p")
done
ref_missing=0
if [ -x "$ref/install.sh" ] || [ -f "$ref/install.sh" ]; then
  bash "$ref/install.sh" --check >/dev/null 2>&1 || ref_missing=1
else
  echo "install-test-deps: $ref/install.sh not found (shared/ must sit beside the checkout)" >&2
  exit 1
fi
if [ ${#need[@]} -eq 0 ] && [ $ref_missing = 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-test-deps: missing ${need[*]} (reference servers: $ref_missing); run as root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
[ $ref_missing = 0 ] || bash "$ref/install.sh"
[ ${#need[@]} -eq 0 ] || apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The tests start private rspamd/clamd instances; never leave system-wide ones running.
for d in rspamd clamd freshclam; do pkill -x "$d" 2>/dev/null || true; done
