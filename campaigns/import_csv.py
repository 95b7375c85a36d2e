"""Reading contact CSV files: decoding, the delimiter, the header row, data rows, and the column mapping.

A pure module (no database), used by ``campaigns.imports`` at upload time (to refuse a bad file before anything
is stored), for the preview, and by the background import. Choices made:

- Decoding reuses the transcripts' decoder (``calls.transcripts.decode_transcript_bytes``): a byte-order mark
  (UTF-8, UTF-16, UTF-32), UTF-16 without one when the NUL bytes say so, strict UTF-8, then Windows-1252 when
  the high bytes read as Western text; bytes that fit no encoding are replaced and the encoding says
  "(replaced)". Binary files (a spreadsheet saved as .xlsx, an image, anything with control characters) are
  refused with what they look like.
- The delimiter is the one of comma, semicolon, tab and pipe that splits the header and the first rows into the
  same, largest number of columns (Excel writes semicolons where the decimal mark is a comma). A one-column file
  is comma-separated.
- The first row is the header. Empty header cells become "Column 3", repeated ones "Phone (2)", so that every
  column has a distinct name for the mapping. A first row that holds a phone number or an e-mail address is data,
  not a header: the file is refused rather than losing its first contact.
- Rows are numbered as a spreadsheet numbers them: the header is row 1, the first data row is row 2 (a quoted
  value spanning lines is one row). Blank rows are kept and numbered, so the report accounts for every one.
- Quoting is strict: an unterminated quote would otherwise swallow the rest of the file into one value.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from calls.transcripts import decode_transcript_bytes

__all__ = [
    "FIELD_LABELS",
    "LIST_FIELDS",
    "SINGLE_FIELDS",
    "CsvFile",
    "ImportFileRejected",
    "MappingInvalid",
    "csv_data_rows",
    "csv_read",
    "mapping_clean",
    "mapping_suggest",
]

DELIMITERS = (",", ";", "\t", "|")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
HEADER_MAX_CHARS = 100
SNIFF_LINES = 50

# Contact fields a column can be mapped to: one column each.
SINGLE_FIELDS = ("name", "first_name", "last_name", "phone", "company", "email", "timezone")
# Fields that take any number of columns.
LIST_FIELDS = ("other_phones", "custom_fields")
FIELD_LABELS = {
    "name": "Name",
    "first_name": "First name",
    "last_name": "Last name",
    "phone": "Phone",
    "other_phones": "Other phone",
    "company": "Company",
    "email": "E-mail",
    "timezone": "Time zone",
    "custom_fields": "Custom field",
}


class ImportFileRejected(Exception):
    """The upload cannot be imported; the message says why and what to do. ``status`` is the HTTP answer."""

    def __init__(self, message: str, *, code: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


class MappingInvalid(Exception):
    """A column mapping that cannot be used: ``errors`` maps a contact field (or "mapping") to its problem."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {error}" for field, error in errors.items()))
        self.errors = dict(errors)


@dataclass(frozen=True, slots=True)
class CsvFile:
    text: str  # decoded, "\n" newlines, no BOM
    encoding: str
    had_replacements: bool
    delimiter: str
    headers: list[str]  # distinct, non-empty column names
    total_rows: int  # data rows, blank ones included


# --- Decoding ------------------------------------------------------------------------------------------------

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "an Excel workbook (.xlsx) or another ZIP file"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel workbook (.xls) or another Office document"),
    (b"%PDF-", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"RIFF", "a WAV or other media file"),
    (b"ID3", "an MP3 recording"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
# Characters no CSV is made of: C0 controls but tab and newlines, DEL, C1 controls, the replacement character.
_CONTROL_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffd]")
_CONTROL_MAX_RATIO = 0.01
_SAVE_AS_CSV = "Save it as CSV (in Excel: File > Save As > CSV UTF-8) and upload that file."


def _decode(raw: bytes) -> tuple[str, str, bool]:
    for signature, kind in _SIGNATURES:
        if raw.startswith(signature):
            raise ImportFileRejected(
                f"This file looks like {kind}, not a CSV file. {_SAVE_AS_CSV}", code="not_csv", status=415
            )
    text, encoding, replaced = decode_transcript_bytes(raw)
    # NUL bytes in a file that is not UTF-16/32 mean binary; the decoder drops them, so look at the bytes.
    nul_in_bytes = b"\x00" in raw[:65536] and not encoding.startswith("utf-16") and not encoding.startswith("utf-32")
    controls = len(_CONTROL_RE.findall(text[:65536]))
    if nul_in_bytes or controls > max(1, len(text[:65536]) * _CONTROL_MAX_RATIO):
        raise ImportFileRejected(
            "This is not a text file: it holds binary data. Upload a CSV file (UTF-8, UTF-16 or Windows-1252). "
            + _SAVE_AS_CSV,
            code="not_csv",
            status=415,
        )
    return text, encoding, replaced


# --- Delimiter and rows ------------------------------------------------------------------------------------


def _rows(text: str, delimiter: str) -> Iterator[list[str]]:
    return csv.reader(io.StringIO(text), delimiter=delimiter, strict=True)


def _sniff_delimiter(text: str) -> str:
    """The delimiter that splits the first lines into the most columns, the same number on most of them."""
    sample = "\n".join(text.split("\n", SNIFF_LINES)[:SNIFF_LINES])
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        widths: list[int] = []
        try:
            for row in _rows(sample, delimiter):
                if row:
                    widths.append(len(row))
        except csv.Error:
            pass  # the sample may end inside a quoted value: what was read still counts
        if not widths or widths[0] < 2:
            continue
        # Rows as wide as the header, then the header's width: "a;b;c" beats a comma inside one value.
        score = (sum(width == widths[0] for width in widths), widths[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


def _unique_headers(cells: Sequence[str]) -> list[str]:
    headers: list[str] = []
    seen: set[str] = set()
    for index, cell in enumerate(cells, start=1):
        base = " ".join(cell.split())[:HEADER_MAX_CHARS] or f"Column {index}"
        name, copy = base, 1
        while name.casefold() in seen:
            copy += 1
            name = f"{base} ({copy})"
        seen.add(name.casefold())
        headers.append(name)
    return headers


_EMAIL_LIKE_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE_LIKE_RE = re.compile(r"^\+?[\d\s().\-/]{7,}$")


def _looks_like_data(cell: str) -> bool:
    value = cell.strip()
    digits = sum(char.isdigit() for char in value)
    return bool(_EMAIL_LIKE_RE.match(value)) or (bool(_PHONE_LIKE_RE.match(value)) and digits >= 7)


def _csv_error(exc: csv.Error, row_number: int) -> ImportFileRejected:
    message = str(exc)
    if "unexpected end of data" in message:
        message = 'a quoted value is never closed (a missing ")'
    elif "field larger than field limit" in message:
        message = f"a value is longer than {csv.field_size_limit():,} characters (a missing closing quote?)"
    return ImportFileRejected(
        f"The file is not valid CSV at row {row_number}: {message}. Fix that row (or save the file again as CSV) "
        "and upload it again.",
        code="invalid_csv",
    )


def csv_read(raw: bytes, *, delimiter: str | None = None) -> CsvFile:
    """Decode and check a whole upload; raises ImportFileRejected with what is wrong and how to fix it."""
    if not raw.strip():
        raise ImportFileRejected("The file is empty.", code="empty")
    text, encoding, replaced = _decode(raw)
    if not text.strip():
        raise ImportFileRejected("The file is empty.", code="empty")
    if delimiter is None:
        delimiter = _sniff_delimiter(text)
    elif delimiter not in DELIMITERS:
        raise ImportFileRejected("The delimiter must be a comma, a semicolon, a tab or a pipe.", code="delimiter")
    header: list[str] | None = None
    total = 0
    row_number = 0
    try:
        for row_number, row in enumerate(_rows(text, delimiter), start=1):  # noqa: B007  # read after the loop
            if header is None:
                if any(cell.strip() for cell in row):
                    header = row
                # blank lines above the header are no contacts
            else:
                total += 1
    except csv.Error as exc:
        raise _csv_error(exc, row_number + 1) from None
    if header is None:
        raise ImportFileRejected("The file is empty.", code="empty")
    data_like = next((cell.strip() for cell in header if _looks_like_data(cell)), None)
    if data_like is not None:
        raise ImportFileRejected(
            f"The first row holds data ('{data_like[:40]}'), not column names. Add a header row naming the columns "
            "(for example: Name, Phone, Company, E-mail) and upload the file again.",
            code="no_header",
        )
    if total == 0:
        raise ImportFileRejected("The file has a header row but no contacts below it.", code="no_rows")
    return CsvFile(
        text=text,
        encoding=encoding,
        had_replacements=replaced,
        delimiter=delimiter,
        headers=_unique_headers(header),
        total_rows=total,
    )


def csv_data_rows(text: str, delimiter: str, *, skip: int = 0) -> Iterator[tuple[int, list[str]]]:
    """(row number, cells) of every data row after the first ``skip`` ones; rows are numbered from the top of
    the file, as a spreadsheet shows them. The text must have passed ``csv_read``."""
    header_seen = False
    index = 0
    for row_number, row in enumerate(_rows(text, delimiter), start=1):
        if not header_seen:
            header_seen = any(cell.strip() for cell in row)
            continue
        index += 1
        if index > skip:
            yield row_number, row


# --- Mapping -------------------------------------------------------------------------------------------------


def _fold(header: str) -> str:
    """ "E-mail" -> "email", "Téléphone" -> "telephone", "Time zone" -> "timezone"."""
    decomposed = unicodedata.normalize("NFKD", header.casefold())
    return re.sub(r"[^0-9a-z]", "", "".join(char for char in decomposed if not unicodedata.combining(char)))


# For each field, header names (folded: lower case, letters and digits only) in order of preference.
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "phone": (
        "phone",
        "phonenumber",
        "telephone",
        "tel",
        "telephonenumber",
        "mobile",
        "mobilephone",
        "mobilenumber",
        "cell",
        "cellphone",
        "cellnumber",
        "msisdn",
        "number",
        "phoneno",
        "contactnumber",
        "primaryphone",
        "telefon",
        "telefono",
        "telephone1",
        "phone1",
    ),
    "other_phones": (
        "otherphone",
        "workphone",
        "homephone",
        "officephone",
        "businessphone",
        "phone2",
        "secondaryphone",
        "alternatephone",
        "altphone",
        "landline",
        "mobile2",
        "telephone2",
    ),
    "name": ("name", "fullname", "contactname", "contact", "displayname", "customername", "leadname", "person"),
    "first_name": ("firstname", "first", "givenname", "forename", "prenom", "vorname"),
    "last_name": ("lastname", "last", "surname", "familyname", "nom", "nachname"),
    "company": (
        "company",
        "companyname",
        "organisation",
        "organization",
        "org",
        "business",
        "account",
        "accountname",
        "employer",
        "firm",
    ),
    "email": ("email", "emailaddress", "mail", "email1", "primaryemail"),
    "timezone": ("timezone", "tz", "zone", "timezonename", "ianatimezone"),
}


def mapping_suggest(headers: Sequence[str]) -> dict[str, Any]:
    """A mapping guessed from the header names; every column left over goes to custom fields."""
    folded = {header: _fold(header) for header in headers}
    used: set[str] = set()
    mapping: dict[str, Any] = {}
    for field in ("phone", "name", "first_name", "last_name", "company", "email", "timezone"):
        if field in ("first_name", "last_name") and "name" in mapping:
            continue  # a full-name column wins; first and last names stay as custom fields
        for synonym in _SYNONYMS[field]:
            match = next((h for h in headers if folded[h] == synonym and h not in used), None)
            if match is not None:
                mapping[field] = match
                used.add(match)
                break
    phone_like = set(_SYNONYMS["phone"]) | set(_SYNONYMS["other_phones"])
    others = [h for h in headers if h not in used and folded[h] in phone_like]
    if others:
        mapping["other_phones"] = others
        used.update(others)
    custom = [h for h in headers if h not in used]
    if custom:
        mapping["custom_fields"] = custom
    return mapping


def _columns_of(field: str, value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    if field in LIST_FIELDS and isinstance(value, list):
        return [column for column in value if column not in (None, "")]
    return [value]


def mapping_clean(mapping: Any, headers: Sequence[str]) -> dict[str, Any]:
    """Check a mapping (contact field -> column name, or list of names for other_phones and custom_fields);
    returns it without its empty entries. Raises MappingInvalid naming each problem."""
    if not isinstance(mapping, Mapping):
        raise MappingInvalid({"mapping": "Must be an object: contact field -> column name."})
    known = set(headers)
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    field_of_column: dict[str, str] = {}
    for field, value in mapping.items():
        if field not in SINGLE_FIELDS and field not in LIST_FIELDS:
            errors[str(field)[:50]] = f"Not a contact field; use one of {', '.join(SINGLE_FIELDS + LIST_FIELDS)}."
            continue
        columns = _columns_of(field, value)
        bad = next((column for column in columns if not isinstance(column, str) or column not in known), None)
        if bad is not None:
            errors[field] = f"No column named {str(bad)[:100]!r} in this file."
            continue
        taken = next((column for column in columns if column in field_of_column), None)
        if taken is not None:
            errors[field] = f"Column {taken!r} is already mapped to {FIELD_LABELS[field_of_column[taken]]}."
            continue
        field_of_column.update(dict.fromkeys(columns, field))
        if columns:
            clean[field] = columns if field in LIST_FIELDS else columns[0]
    names = {"name", "first_name", "last_name"}
    if "phone" not in clean and "phone" not in errors:
        errors["phone"] = "Choose the column that holds the phone number."
    if not names & clean.keys() and not names & errors.keys():
        errors["name"] = "Choose the column that holds the name (or the first and last name columns)."
    if errors:
        raise MappingInvalid(errors)
    return clean
