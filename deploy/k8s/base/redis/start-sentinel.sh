#!/bin/sh
# Starts one sentinel of the StatefulSet `redis-sentinel` (deploy/k8s/base/redis.yaml). Sentinel
# rewrites its config file, so it is written here into the pod's writable /data. A sentinel that
# restarts asks the others for the current master rather than trusting redis-0.
set -eu
master=""
port=6379
for i in 0 1 2; do
  host="redis-sentinel-$i.redis-sentinel-headless"
  [ "$host" = "$HOSTNAME.redis-sentinel-headless" ] && continue
  reply=$(redis-cli -h "$host" -p 26379 --raw \
    sentinel get-master-addr-by-name conveyor 2>/dev/null) || continue
  # shellcheck disable=SC2086 # split "host port" on purpose
  set -- $reply
  if [ $# -eq 2 ]; then
    master=$1
    port=$2
    break
  fi
done
[ -n "$master" ] || master=redis-0.redis-headless
printf '%s\n' \
  "port 26379" \
  "dir /data" \
  "sentinel resolve-hostnames yes" \
  "sentinel announce-hostnames yes" \
  "sentinel announce-ip $HOSTNAME.redis-sentinel-headless" \
  "sentinel monitor conveyor $master $port 2" \
  "sentinel down-after-milliseconds conveyor 5000" \
  "sentinel failover-timeout conveyor 60000" \
  "sentinel parallel-syncs conveyor 1" > /data/sentinel.conf
echo "start-sentinel: monitoring $master:$port"
exec redis-server /data/sentinel.conf --sentinel
