#!/usr/bin/env bash
# Starts the local PostgreSQL and MariaDB used by the agent tests when they are installed but down.
# On a machine without them this does nothing; the tests that need them then skip with a reason
# (an installed server that stays down makes them fail: see tests/agent_engines/real_databases.py).
set -u
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432 && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! port_open 3306 && [ -x /usr/sbin/mariadbd ]; then
  echo "starting MariaDB" >&2
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
for _ in $(seq 1 30); do
  { ! [ -d /etc/postgresql ] || port_open 5432; } && { ! [ -x /usr/sbin/mariadbd ] || port_open 3306; } && exit 0
  sleep 1
done
echo "warning: an installed database server did not come up; the tests that need it will fail" >&2
exit 0
