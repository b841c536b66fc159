#!/bin/sh
# The heartbeat for a container platform with no cron or systemd (deploy/compose.yaml): run
# `manage.py heartbeat` at the start of every HEARTBEAT_LOOP_SECONDS slot of the clock (UTC),
# for ever. Set it to the period of HEARTBEAT_SCHEDULE (default HEARTBEAT_INTERVAL_MINUTES).
# A failed sweep is reported by the command itself (exit status, log, HEARTBEAT_PING_URL);
# the loop logs the status and goes on to the next slot.
set -u
period=${HEARTBEAT_LOOP_SECONDS:-$(( ${HEARTBEAT_INTERVAL_MINUTES:-15} * 60 ))}
while :; do
  now=$(date +%s)
  sleep $(( period - now % period ))
  python manage.py heartbeat
  status=$?
  [ "$status" -eq 0 ] || echo "heartbeat-loop: manage.py heartbeat exited $status" >&2
done
