#!/bin/sh
# Starts one Redis of the StatefulSet `redis` (deploy/k8s/base/redis.yaml), as the master or as a
# replica of the master the sentinels name. Only the first start of the set has no sentinel to
# ask; then redis-0 begins as the master. POSIX sh (dash): the image has no other tools.
set -eu
me="$HOSTNAME.redis-headless"
master=""
port=6379
for i in 0 1 2; do
  reply=$(redis-cli -h "redis-sentinel-$i.redis-sentinel-headless" -p 26379 --raw \
    sentinel get-master-addr-by-name conveyor 2>/dev/null) || continue
  # shellcheck disable=SC2086 # split "host port" on purpose
  set -- $reply
  if [ $# -eq 2 ]; then
    master=$1
    port=$2
    break
  fi
done
if [ -z "$master" ]; then
  if [ "$HOSTNAME" = redis-0 ]; then master=$me; else master=redis-0.redis-headless; fi
fi
set -- --port 6379 --bind 0.0.0.0 --protected-mode no --dir /data \
  --appendonly yes --replica-announce-ip "$me"
if [ "$master" != "$me" ]; then
  echo "start-redis: replica of $master:$port"
  set -- "$@" --replicaof "$master" "$port"
else
  echo "start-redis: master"
fi
exec redis-server "$@"
