#!/bin/sh
# Runs in machine `db`: create the application's database if a server is there.
set -eu
if command -v mysql >/dev/null; then
  mysql -e "CREATE DATABASE IF NOT EXISTS myapp"
fi
