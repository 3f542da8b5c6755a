"""Job triggers: the rows of the triggers table (cron, event, webhook, manual), validated,
and webhook tokens; this package creates, lists and deletes them, finds a webhook trigger by
its token, keeps a job's manifest triggers in step with its function's live manifest
(reconcile.py, manifest_sync.py), previews cron fire times (preview.py) and fires cron slots
(scheduler.py; the slot arithmetic is domain/cron.py). Event rows are fired by ctx.emit's
fan-out (engine/fanout.py), inside the emitting run's append; webhook signatures are
domain/signature.py."""
