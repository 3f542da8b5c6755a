"""Job triggers: the rows of the triggers table (cron, event, webhook, manual), validated,
and webhook tokens. The scheduler (engine/scheduler.py) fires cron rows and ctx.emit's
fan-out (engine/fanout.py) event rows; this package creates, lists and deletes them, finds
a webhook trigger by its token, keeps a job's manifest triggers in step with its function's
live manifest (reconcile.py, manifest_sync.py) and previews cron fire times (preview.py)."""
