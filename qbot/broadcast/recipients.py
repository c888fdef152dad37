"""A broadcast's recipients: the CSV, each row checked before anything is sent.

The CSV has a header row. One column holds the phone number (named ``phone``; ``phone_number``,
``to``, ``wa_id``, ``whatsapp``, ``msisdn``, ``nomor`` and ``no_hp`` are accepted too); every
other column is one template variable, in column order: the first fills ``{{1}}``, the second
``{{2}}``... A column named ``language`` (or ``lang``) is not a variable: it overrides the
broadcast's language for that row, and one named ``header`` fills the template's header
``{{1}}`` (for templates whose header has one).

```text
phone,name,order
+62 812-3456-7890,Ana,A-1001
081298765432,Budi,A-1002
```

A phone is written as people write it: spaces, dashes, dots, brackets and a leading ``+`` are
dropped; a leading ``0`` is a national number and takes the country code (``62`` by default).
It must then be 8 to 15 digits (E.164). A row whose phone is not a number, that has more or
fewer cells than the header, an empty variable, a variable WhatsApp refuses (a new line, a tab,
more than four spaces in a row, over 1,024 characters), or a phone already listed in an earlier
row is refused with the reason; the other rows are sent.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qbot.errors import ConfigError

__all__ = [
    "PHONE_COLUMNS",
    "Recipient",
    "RecipientList",
    "normalize_phone",
    "read_recipients",
]

PHONE_COLUMNS = ("phone", "phone_number", "to", "wa_id", "whatsapp", "msisdn", "nomor", "no_hp")
LANGUAGE_COLUMNS = ("language", "lang")
HEADER_COLUMNS = ("header",)
MAX_VARIABLE = 1024
_SPACES = re.compile(r" {5,}")
_SEPARATORS = re.compile(r"[\s\-.()/]")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:_[A-Z]{2})?$")


def normalize_phone(text: str, country_code: str = "62") -> str:
    """The phone as WhatsApp wants it: digits only, with the country code (``6281234567890``).

    Raises:
        ValueError: not a phone number (the message says why).
    """
    raw = text.strip()
    if not raw:
        raise ValueError("the phone is empty")
    digits = _SEPARATORS.sub("", raw)
    if digits.startswith("+"):
        digits = digits[1:]
    elif digits.startswith("00"):
        digits = digits[2:]
    elif digits.startswith("0"):
        digits = country_code + digits[1:]
    if not digits.isdigit() or not digits.isascii():
        raise ValueError(f"phone {raw!r} is not a phone number")
    if not 8 <= len(digits) <= 15:
        raise ValueError(f"phone {raw!r} has {len(digits)} digits (8 to 15 with the country code)")
    return digits


def check_variable(value: str, index: int, column: str) -> str | None:
    """Why WhatsApp would refuse this variable, or ``None``."""
    where = f"variable {index} ({column!r})"
    if not value.strip():
        return f"{where} is empty"
    if "\n" in value or "\r" in value or "\t" in value:
        return f"{where} has a new line or a tab (WhatsApp refuses them in variables)"
    if _SPACES.search(value):
        return f"{where} has more than 4 spaces in a row (WhatsApp refuses it)"
    if len(value) > MAX_VARIABLE:
        return f"{where} has {len(value)} characters (at most {MAX_VARIABLE})"
    return None


@dataclass(frozen=True, slots=True)
class Recipient:
    """One row of the CSV.

    Attributes:
        row: its line number in the file (the header is line 1).
        phone: the normalised phone (digits with the country code), or the raw cell if refused.
        variables: the template's variables, in order.
        language: the row's own language, if it has a ``language`` column.
        header: the row's header value, if it has a ``header`` column.
        refused: why the row will not be sent (``None``: it will).
    """

    row: int
    phone: str
    variables: tuple[str, ...] = ()
    language: str | None = None
    refused: str | None = None
    header: str | None = None


@dataclass(slots=True)
class RecipientList:
    """The CSV read: recipients in file order, and what identifies the file's content."""

    phone_column: str
    variable_columns: list[str]
    recipients: list[Recipient] = field(default_factory=list)
    digest: str = ""

    @property
    def accepted(self) -> list[Recipient]:
        """The rows that will be sent."""
        return [r for r in self.recipients if r.refused is None]

    @property
    def refused(self) -> list[Recipient]:
        """The rows refused, each with its reason."""
        return [r for r in self.recipients if r.refused is not None]

    def expect_variables(self, count: int, template: str) -> None:
        """Check that the CSV has one variable column per variable of the template.

        Raises:
            ConfigError: it has not (the whole file is wrong, not a row).
        """
        have = len(self.variable_columns)
        if have != count:
            columns = ", ".join(self.variable_columns) or "none"
            raise ConfigError(
                f"template {template!r} takes {count} variable(s) but the CSV has {have} "
                f"variable column(s) ({columns}) besides {self.phone_column!r}"
            )


def read_recipients(
    source: str | Path | Iterable[str], *, country_code: str = "62"
) -> RecipientList:
    """Read and check a recipients CSV (see the module's doc for the format).

    Args:
        source: a file path, or the CSV's lines.
        country_code: what a national number (a leading ``0``) is prefixed with.

    Raises:
        ConfigError: the file cannot be read, is not a CSV with a header, or has no phone column.
    """
    if isinstance(source, str | Path):
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise ConfigError(f"recipients file {str(path)!r} does not exist") from None
        except IsADirectoryError:
            raise ConfigError(f"recipients file {str(path)!r} is a directory") from None
        except OSError as e:
            raise ConfigError(f"cannot read recipients file {str(path)!r}: {e.strerror}") from e
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise ConfigError(
                f"recipients file {str(path)!r} is not UTF-8 text (byte {e.start}): "
                "save it as CSV UTF-8"
            ) from None
        name = str(path)
    else:
        text = "".join(line if line.endswith("\n") else line + "\n" for line in source)
        data = text.encode()
        name = "the CSV"
    return _parse(text, name, hashlib.sha256(data).hexdigest(), country_code)


def _dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    try:
        return csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
    except csv.Error:
        return csv.excel


def _parse(text: str, name: str, digest: str, country_code: str) -> RecipientList:
    rows: list[tuple[int, list[str]]] = []  # (the file line a record starts on, its cells)
    reader = csv.reader(io.StringIO(text), _dialect(text))
    try:
        start = 1
        for cells in reader:
            rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as e:
        raise ConfigError(f"{name} is not a valid CSV (line {reader.line_num}): {e}") from None
    while rows and not any(cell.strip() for cell in rows[0][1]):
        del rows[0]  # blank lines above the header (Excel exports, hand edits)
    if not rows:
        raise ConfigError(f"{name} is empty: it needs a header row with a 'phone' column")
    header = [cell.strip() for cell in rows[0][1]]
    folded = [h.casefold() for h in header]
    phone_at = next((folded.index(c) for c in PHONE_COLUMNS if c in folded), None)
    if phone_at is None:
        raise ConfigError(
            f"{name} has no phone column: name one of its header cells 'phone' "
            f"(its header is {', '.join(repr(h) for h in header)})"
        )
    for kind, names in (
        ("phone", PHONE_COLUMNS),
        ("language", LANGUAGE_COLUMNS),
        ("header", HEADER_COLUMNS),
    ):
        twice = [header[i] for i, h in enumerate(folded) if h in names]
        if len(twice) > 1:
            raise ConfigError(
                f"{name} has two {kind} columns ({', '.join(repr(h) for h in twice)}): keep one"
            )
    language_at = next((folded.index(c) for c in LANGUAGE_COLUMNS if c in folded), None)
    header_at = next((folded.index(c) for c in HEADER_COLUMNS if c in folded), None)
    skip = {phone_at, language_at, header_at}
    variable_at = [i for i in range(len(header)) if i not in skip]
    listing = RecipientList(header[phone_at], [header[i] for i in variable_at], digest=digest)
    seen: dict[str, int] = {}
    for line, cells in rows[1:]:
        if not any(cell.strip() for cell in cells):
            continue  # a blank line
        listing.recipients.append(
            _row(
                line,
                cells,
                header,
                (phone_at, language_at, header_at),
                variable_at,
                seen,
                country_code,
            )
        )
    return listing


def _row(
    line: int,
    cells: Sequence[str],
    header: Sequence[str],
    special: tuple[int, int | None, int | None],
    variable_at: Sequence[int],
    seen: dict[str, int],
    country_code: str,
) -> Recipient:
    phone_at, language_at, header_at = special
    raw_phone = cells[phone_at].strip() if phone_at < len(cells) else ""
    if len(cells) != len(header):
        have, want = len(cells) - len(header) + len(variable_at), len(variable_at)
        return Recipient(
            line, raw_phone, refused=f"the row has {have} variable(s), the CSV's header {want}"
        )
    try:
        phone = normalize_phone(raw_phone, country_code)
    except ValueError as e:
        return Recipient(line, raw_phone, refused=str(e))
    variables = tuple(cells[i].strip() for i in variable_at)
    for index, (at, value) in enumerate(zip(variable_at, variables, strict=True), start=1):
        problem = check_variable(value, index, header[at])
        if problem is not None:
            return Recipient(line, phone, variables, refused=problem)
    head = cells[header_at].strip() if header_at is not None else None
    if head is not None:
        problem = check_variable(head, 1, header[header_at] if header_at is not None else "")
        if problem is not None:
            return Recipient(line, phone, variables, refused="header " + problem)
    language = cells[language_at].strip() if language_at is not None else ""
    if language and not _LANGUAGE.match(language):
        return Recipient(
            line, phone, variables, refused=f"language {language!r} is not a code like id or en_US"
        )
    if phone in seen:
        return Recipient(
            line, phone, variables, refused=f"phone {phone} is already on line {seen[phone]}"
        )
    seen[phone] = line
    return Recipient(line, phone, variables, language or None, header=head)
