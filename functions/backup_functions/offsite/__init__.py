"""The off-site vault (pipeline.offsite): which good backups have a verified copy there (``check``)."""
