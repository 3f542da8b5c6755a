"""Job triggers: the rows of the triggers table (cron, event, webhook, manual), validated,
and webhook tokens. The scheduler (engine/scheduler.py) fires cron rows and ctx.emit's
fan-out (engine/fanout.py) event rows; this package creates, lists and deletes them and finds
a webhook trigger by its token."""
