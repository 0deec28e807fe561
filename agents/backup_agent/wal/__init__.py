"""WAL archiving for point-in-time recovery (docs/pitr.md): ``backup-agent wal-push`` and ``wal-fetch``.

- ``journal``: the local record, per target, of every WAL file this host is archiving or archived
  (written and fsync'd *before* the upload), which makes a retry after a crash or kill idempotent
  without reading the archive, and keeps the ``WAL Archived`` events still owed to the bus;
- ``prepare``: one WAL file read, hashed and compressed (bounded memory whatever the segment size);
- ``push``: one WAL file (and the next few the server has marked ready, in parallel) stored with a
  conditional PutObject under SSE-KMS, journaled before and after;
- ``fetch``: a file of a restore's ``WalIndex`` fetched through its presigned URL, checked and
  decompressed for PostgreSQL's ``restore_command``, with the next files prefetched;
- ``status``: where each PITR server's WAL stands, for the agent's heartbeat;
- ``commands``: the two subcommands, registered on the agent's CLI, and the owed events' re-sending.
"""
