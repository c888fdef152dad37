"""Broadcasts: one WhatsApp template to every recipient of a CSV, resumable, at a bounded rate.

```python
from qbot.broadcast import Broadcast, WhatsAppTemplate, write_report
from qbot.omnichannel import OmnichannelClient
from qbot.client import RetryPolicy

async with OmnichannelClient(app_code, secret, retry=RetryPolicy(max_attempts=1)) as omni:
    broadcast = Broadcast(WhatsAppTemplate(omni, "order_shipped"), "recipients.csv", rate=20)
    result = await broadcast.run()        # run it again after a crash: it resumes
    write_report(result.entries, "report.csv")
```

The command line does the same: ``qbot broadcast --template order_shipped --csv recipients.csv``
(``docs/broadcasts.md``).
"""

from __future__ import annotations

from qbot.broadcast.journal import Entry, Journal, Status
from qbot.broadcast.rate import TokenBucket, parse_rate
from qbot.broadcast.recipients import Recipient, RecipientList, normalize_phone, read_recipients
from qbot.broadcast.report import report_format, write_report
from qbot.broadcast.runner import (
    Broadcast,
    BroadcastResult,
    Progress,
    TemplateSender,
    default_journal,
)
from qbot.broadcast.whatsapp import WhatsAppTemplate

__all__ = [
    "Broadcast",
    "BroadcastResult",
    "Entry",
    "Journal",
    "Progress",
    "Recipient",
    "RecipientList",
    "Status",
    "TemplateSender",
    "TokenBucket",
    "WhatsAppTemplate",
    "default_journal",
    "normalize_phone",
    "parse_rate",
    "read_recipients",
    "report_format",
    "write_report",
]
