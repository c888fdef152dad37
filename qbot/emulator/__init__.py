"""A local stand-in for the Qiscus backend plus a web chat page: build a bot without an account.

```python
config = EmulatorConfig(webhook_url="http://127.0.0.1:8081/webhook")
emulator = Emulator(config, EmulatorStore(".qbot/emulator.sqlite3"))
app = create_emulator_app(emulator)   # serve it with aiohttp; the page is at /
```

In tests, ``serve_emulator`` starts and serves one on a free port; the emulator records every
REST call (``emulator.calls``) and injects faults (``fail_next``, ``delay``, ``hang``).
"""

from __future__ import annotations

from qbot.emulator.app import create_emulator_app, serve_emulator
from qbot.emulator.calls import Call, UploadedFile
from qbot.emulator.core import Emulator, EmulatorConfig
from qbot.emulator.store import EmulatorStore
from qbot.emulator.webhook import buttons_of, postback_response, sign, webhook_body

__all__ = [
    "Call",
    "Emulator",
    "EmulatorConfig",
    "EmulatorStore",
    "UploadedFile",
    "buttons_of",
    "create_emulator_app",
    "postback_response",
    "serve_emulator",
    "sign",
    "webhook_body",
]
