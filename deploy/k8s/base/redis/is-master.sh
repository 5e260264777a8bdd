#!/bin/sh
# Readiness of a Redis pod: ready only while it is the master, so the Service `redis` (which the
# services' REDIS_URL names) always leads to the one that takes writes. After a failover the
# promoted replica becomes ready and the old master, now a replica, stops being ready.
case "$(redis-cli -p 6379 --raw role 2>/dev/null)" in
  master*) exit 0 ;;
  *) exit 1 ;;
esac
