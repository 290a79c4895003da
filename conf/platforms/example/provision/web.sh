#!/bin/sh
# Runs in machine `web` after its packages are installed: the rendered
# files of the workspace are in place; enable the sites and restart nginx.
set -eu
if command -v nginx >/dev/null; then
  nginx -t && (systemctl reload nginx || nginx -s reload)
fi
