#!/bin/sh
echo "hello from $(cat /arch) ($(cat /app/platform))"
