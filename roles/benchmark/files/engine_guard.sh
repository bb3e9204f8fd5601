#!/bin/sh
# Runs one engine on a node and stays with it; the benchmark role starts it in the background
# (async, poll 0) after taking the node's lock (run_engine.yml), with an allow-listed environment.
#
#   engine_guard.sh LOCK HEARTBEAT STALE_S MARKER CONTAINER -- COMMAND...   > LOG 2>&1
#
# - LOCK (a folder) says which run holds the node; this guard adds its pid, so the next run can
#   tell a live holder from a stale one, and removes the folder when the engine is done.
# - The control side touches HEARTBEAT while it waits. When it has not for STALE_S seconds, or
#   removed it (a failed wait), ansible-playbook is gone (Ctrl-C, SIGTERM, a lost laptop) and
#   nobody will collect: the engine is stopped rather than left to load the node for hours.
#   Native: TERM to the process group timeout(1) leads, KILL 10 s later; Docker: docker stop of
#   CONTAINER (killing the client would leave the container running).
# - MARKER gets the engine's exit status last: it ends the control side's waits.
# Every number here is small (seconds since a touch, STALE_S bounded by the role): no shell
# arithmetic on a run's length.
set -u
lock=$1 heartbeat=$2 stale=$3 marker=$4 container=$5
shift 6

# `kill <this pid>` (the refusal of the next run names it) stops the engine too.
stopping=""
trap 'stopping=1' TERM INT HUP
echo $$ > "$lock/pid"
touch "$heartbeat"
"$@" &
engine=$!

stop_engine() {
    echo "engine stopped: $1 (an engine is never left running without its control side)"
    if [ -n "$container" ]; then
        docker stop -t 10 "$container" > /dev/null 2>&1
    else
        kill -TERM -- "-$engine" 2> /dev/null || kill -TERM "$engine" 2> /dev/null
        waited=0
        while kill -0 "$engine" 2> /dev/null && [ "$waited" -lt 10 ]; do
            sleep 1
            waited=$((waited + 1))
        done
        kill -KILL -- "-$engine" 2> /dev/null || kill -KILL "$engine" 2> /dev/null
    fi
}

while kill -0 "$engine" 2> /dev/null; do
    if [ -n "$stopping" ]; then
        stop_engine "its guard was sent a signal"
        break
    fi
    if [ ! -e "$heartbeat" ]; then
        stop_engine "the control side's wait failed"
        break
    fi
    quiet=$(( $(date +%s) - $(stat -c %Y "$heartbeat" 2> /dev/null || date +%s) ))
    if [ "$quiet" -gt "$stale" ]; then
        stop_engine "no word from the control side (ansible-playbook) for $quiet s"
        break
    fi
    sleep 1
done
wait "$engine"
rc=$?

[ "$(cat "$lock/pid" 2> /dev/null)" = "$$" ] && rm -rf "$lock"
echo "$rc" > "$marker"
