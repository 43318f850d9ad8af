"""The demo's local SMTP sink: accepts every email on loopback and keeps it as a file.

``dunning run`` starts it when no mail settings are given (``python -m
dunning.notify.sink``), points the workers' SMTP settings at it, and the web app's
outbox page (``/outbox``) lists what it caught, so a newcomer can open the first
dunning email and click its link. Messages are stored as ``.eml`` files under
``<data dir>/outbox``: readable by any mail client, no schema, gone with the folder.
Text messages (SMS) of the demo are written to the same folder by the workers
(:func:`store_sms`), marked ``X-Dunning-Channel: sms``, so the outbox lists both.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from pathlib import Path
from typing import Any

OUTBOX = "outbox"
CHANNEL_HEADER = "X-Dunning-Channel"
_ID = re.compile(r"^[0-9]{8}T[0-9]{6}-[0-9a-f]{8}$")


def outbox_dir(data_dir: Path) -> Path:
    """Where the sink keeps messages for a data folder."""
    return Path(data_dir) / OUTBOX


def store(folder: Path, raw: bytes) -> str:
    """Write one message atomically; return its id (sortable by arrival)."""
    folder.mkdir(parents=True, exist_ok=True)
    message_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{os.urandom(4).hex()}"
    tmp = folder / f".{message_id}.tmp"
    tmp.write_bytes(raw)
    tmp.rename(folder / f"{message_id}.eml")
    return message_id


def store_sms(folder: Path, to: str, sender: str, text: str) -> str:
    """Keep a demo text message as a one-part message in the outbox; return its id."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = f"SMS to {to}"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    message[CHANNEL_HEADER] = "sms"
    message.set_content(text, charset="utf-8")
    return store(folder, message.as_bytes())


class SinkHandler:
    """aiosmtpd handler: every message of every envelope goes to ``folder``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        store(self.folder, data if isinstance(data, bytes) else str(data).encode())
        return "250 Message accepted for delivery"


@dataclass(frozen=True)
class StoredEmail:
    """One caught message, parsed for the outbox page."""

    id: str
    received_at: datetime
    sender: str
    to: str
    subject: str
    text: str
    html: str | None
    channel: str = "email"  # or "sms"


def _parse(path: Path) -> StoredEmail:
    message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    assert isinstance(message, EmailMessage)
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    stamp = datetime.strptime(path.stem.split("-")[0], "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    return StoredEmail(
        id=path.stem,
        received_at=stamp,
        sender=str(message.get("From", "")),
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        text=text_part.get_content() if text_part is not None else "",
        html=html_part.get_content() if html_part is not None else None,
        channel=str(message.get(CHANNEL_HEADER, "email")),
    )


def list_emails(folder: Path, limit: int = 200) -> list[StoredEmail]:
    """The newest ``limit`` messages, newest first."""
    if not folder.is_dir():
        return []
    paths = sorted(folder.glob("*.eml"), reverse=True)[:limit]
    return [_parse(path) for path in paths]


def read_email(folder: Path, message_id: str) -> StoredEmail | None:
    """One message by id; None for an unknown or malformed id (never a path outside)."""
    if not _ID.match(message_id):
        return None
    path = folder / f"{message_id}.eml"
    return _parse(path) if path.is_file() else None


def serve(folder: Path, host: str, port: int) -> None:
    """Run the sink until SIGTERM or Ctrl-C."""
    from aiosmtpd.controller import Controller

    controller = Controller(SinkHandler(folder), hostname=host, port=port)
    controller.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="local SMTP sink for the demo")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument("--dir", type=Path, required=True, help="folder for the .eml files")
    args = parser.parse_args(argv)
    serve(args.dir, args.host, args.port)


if __name__ == "__main__":
    main()
