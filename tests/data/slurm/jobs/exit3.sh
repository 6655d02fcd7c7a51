#!/bin/sh
echo "exiting with 3" >&2
exit 3
