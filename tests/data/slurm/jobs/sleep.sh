#!/bin/sh
# Sleep for $1 seconds (default 300).
sleep "${1:-300}"
