#!/bin/sh
# The application: what changes from one commit to the next.
echo "app $(cat /app/VERSION) on $(uname -m) with $(ls /opt/site-packages | wc -l) packages"
