"""Transcript files: decode their bytes, recognise their format and split them into speaker segments.

A pure module (no database, no Django models) used by the ingest worker. ``parse_transcript`` accepts plain text
(.txt), JSON (.json: our own shape, Whisper/OpenAI ``verbose_json``, Deepgram- and AssemblyAI-like utterances),
WebVTT (.vtt) and SubRip (.srt); an unknown extension is settled by sniffing the content. It raises
``TranscriptError`` -- whose message is shown to users -- only for files that cannot be a transcript at all
(too large, binary, JSON of the wrong shape); anything else is parsed as tolerantly as possible.

Decoding (``decode_transcript_bytes``) never raises. The order is: a byte-order mark (UTF-32, UTF-8, UTF-16);
UTF-16 without a BOM when NUL bytes in alternating positions say so; strict UTF-8; strict Windows-1252 when the
non-ASCII bytes look like Western text rather than damaged UTF-8 (see ``_looks_like_cp1252``); UTF-8 with
replacement characters. Whenever bytes had to be replaced the encoding ends with " (replaced)" and
``had_replacements`` is true.

Choices made on ambiguous input:

- Segments whose text is empty after cleaning are dropped (a cue holding only tags, a blank JSON segment).
- Times are integer milliseconds; a negative, non-finite or absurdly large time becomes None, and an end before
  its start is dropped (``end_ms=None``): the start is kept, as it orders the segments.
- Speakers are stripped, inner whitespace collapsed, case kept, cut to 64 characters (the column's size). Integer
  JSON speakers (Deepgram) become "Speaker <n>"; string speakers are kept as given ("A", "0").
- The language is kept only when it fits the 16-character column; otherwise it is "".
- Multi-line cue text is joined with single spaces, so every segment is one line of ``ParsedTranscript.text``.
- An empty (or whitespace-only) file is an empty transcript, not an error.
"""

from __future__ import annotations

import codecs
import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

import srt

__all__ = [
    "MAX_TRANSCRIPT_BYTES",
    "ParsedTranscript",
    "Segment",
    "TranscriptError",
    "decode_transcript_bytes",
    "parse_transcript",
]

MAX_TRANSCRIPT_BYTES = 10 * 1024 * 1024

FORMATS = ("txt", "json", "vtt", "srt")
SPEAKER_MAX_LENGTH = 64  # TranscriptSegment.speaker
LANGUAGE_MAX_LENGTH = 16  # Transcript.language
SPEAKER_LABEL_MAX_LENGTH = 32  # a "Name:" prefix longer than this is text, not a speaker
_MAX_MS = 2**63 - 1  # the segment columns are 64-bit integers

REPLACED_SUFFIX = " (replaced)"


@dataclass(frozen=True, slots=True)
class Segment:
    speaker: str  # "" when unknown
    start_ms: int | None
    end_ms: int | None
    text: str


@dataclass(frozen=True, slots=True)
class ParsedTranscript:
    text: str  # the segments joined with "\n", each as "Speaker: text" when the speaker is known
    segments: list[Segment]
    encoding: str  # how the bytes were decoded, e.g. "utf-8", "cp1252", "utf-8 (replaced)"
    had_replacements: bool  # undecodable bytes were replaced with U+FFFD
    language: str  # "" unless the file says
    format: str  # "txt" | "json" | "vtt" | "srt"


class TranscriptError(Exception):
    """The file cannot be a transcript at all; the message is shown to users."""


# --- Decoding ----------------------------------------------------------------------------------------------

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 LE first: its BOM starts with the UTF-16 LE one.
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_UTF16_SAMPLE_BYTES = 4096
_HIGH_BYTE_MASK = bytes(0 if byte < 0x80 else 1 for byte in range(256))
_CP1252_LETTERS = frozenset(
    byte for byte in range(0x80, 0x100) if (char := bytes([byte]).decode("cp1252", errors="ignore")) and char.isalpha()
)
# One-letter words of Western languages: "à bientôt", "é verdade", "sí o no".
_CP1252_ONE_LETTER_WORDS = frozenset("àáèéìíòóùúÀÁÈÉÓ".encode("cp1252"))
_STRAY_LETTER_BYTES = re.escape(bytes(sorted(_CP1252_LETTERS - _CP1252_ONE_LETTER_WORDS)))
# Runs of two and more high bytes, and a lone letter byte (but a one-letter word) with no letter or digit around.
_SUSPECT_HIGH_BYTES_RE = re.compile(
    rb"[\x80-\xff]{2,}|(?<![A-Za-z0-9\x80-\xff])[" + _STRAY_LETTER_BYTES + rb"](?![A-Za-z0-9\x80-\xff])"
)
_NEWLINE_RE = re.compile("\r\n|[\r\u2028\u2029]")


def decode_transcript_bytes(raw: bytes) -> tuple[str, str, bool]:
    """Decode a transcript file: (text, encoding, had_replacements). Never raises.

    The text has no leading BOM, no NUL characters, and "\\n" newlines only.
    """
    text, encoding, replaced = _decode(bytes(raw))
    return _clean_decoded(text), encoding, replaced


def _decode(raw: bytes) -> tuple[str, str, bool]:
    """Decode without cleaning (NULs kept, for the binary check)."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            body = raw[len(bom) :]
            codec = "utf-8" if name == "utf-8-sig" else name
            try:
                return body.decode(codec), name, False
            except UnicodeDecodeError:
                if name.startswith("utf-32"):
                    continue  # FF FE 00 00 may be a UTF-16 LE BOM followed by a NUL: try the next BOM
                return body.decode(codec, errors="replace"), name + REPLACED_SUFFIX, True
    utf16 = _utf16_without_bom(raw)
    if utf16 is not None:
        return utf16
    try:
        return raw.decode("utf-8"), "utf-8", False
    except UnicodeDecodeError:
        pass
    try:
        text = raw.decode("cp1252")
    except UnicodeDecodeError:
        pass  # 0x81, 0x8D, 0x8F, 0x90 or 0x9D: not cp1252 either
    else:
        if _looks_like_cp1252(raw):
            return text, "cp1252", False
    return raw.decode("utf-8", errors="replace"), "utf-8" + REPLACED_SUFFIX, True


def _utf16_without_bom(raw: bytes) -> tuple[str, str, bool] | None:
    """UTF-16 when the bytes clearly are: many NULs on one parity, almost none on the other (ASCII in UTF-16)."""
    sample = raw[:_UTF16_SAMPLE_BYTES]
    sample = sample[: len(sample) // 2 * 2]
    pairs = len(sample) // 2
    if pairs < 2:
        return None
    nul_even, nul_odd = sample[0::2].count(0), sample[1::2].count(0)
    if nul_odd >= pairs * 0.3 and nul_even <= pairs * 0.05:
        codec = "utf-16-le"
    elif nul_even >= pairs * 0.3 and nul_odd <= pairs * 0.05:
        codec = "utf-16-be"
    else:
        return None
    try:
        return raw.decode(codec), codec, False
    except UnicodeDecodeError:
        return None  # odd length or lone surrogates: not that clear after all; UTF-8 (NULs dropped) may do


def _looks_like_cp1252(raw: bytes) -> bool:
    """Whether the non-ASCII bytes of a file that is not valid UTF-8 read as Western text rather than damaged UTF-8.

    Each run of consecutive bytes >= 0x80 votes; ties go to Windows-1252. Windows-1252 text has short runs inside
    words ("café", "Grüße"), punctuation (dashes, curly quotes) or one-letter words ("à", "é"). Damaged UTF-8 shows as
    runs that are valid UTF-8 (an "é" written C3 A9, mojibake under cp1252), three and more high bytes in a row
    ("\\xff\\xfe\\xc3"), or letters standing alone outside any word ("hello \\xc3( there \\xff" would read
    "hello Ã( there ÿ").
    """
    high = raw.translate(_HIGH_BYTE_MASK)
    runs = high.count(b"\x00\x01") + high.startswith(b"\x01")
    utf8 = 0
    for match in _SUSPECT_HIGH_BYTES_RE.finditer(raw):
        run = match.group()
        if len(run) == 2 and not _valid_utf8(run) and not _stray_letters(raw, match.start(), match.end()):
            continue  # "üß", "é”": Western
        utf8 += 1
        if utf8 * 2 > runs:
            return False
    return True


def _valid_utf8(run: bytes) -> bool:
    try:
        run.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _stray_letters(raw: bytes, start: int, end: int) -> bool:
    """Whether raw[start:end] holds only letters (in cp1252) and no letter or digit touches it."""
    before = raw[start - 1 : start] if start else b""
    after = raw[end : end + 1]
    return all(byte in _CP1252_LETTERS for byte in raw[start:end]) and not (before.isalnum() or after.isalnum())


def _clean_decoded(text: str) -> str:
    text = text.replace("\x00", "")
    text = text.removeprefix("\ufeff")
    return _NEWLINE_RE.sub("\n", text)


# --- Parsing -----------------------------------------------------------------------------------------------

_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or an Office document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"ID3\x02", "an MP3 recording"),
    (b"ID3\x03", "an MP3 recording"),
    (b"ID3\x04", "an MP3 recording"),
    (b"\xff\xfb", "an MP3 recording"),
    (b"\xff\xf3", "an MP3 recording"),
    (b"\xff\xf2", "an MP3 recording"),
    (b"OggS\x00", "an Ogg recording"),
    (b"fLaC", "a FLAC recording"),
    (b"\x1a\x45\xdf\xa3", "a WebM or Matroska file"),
)
# Characters no text file is made of: C0 controls but tab, newlines, vertical tab and form feed; DEL; C1
# controls; the replacement character.
_BINARY_CHARS_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f\ufffd]")
_BINARY_MAX_RATIO = 0.1


def parse_transcript(*, raw: bytes, filename: str) -> ParsedTranscript:
    """Decode and parse a transcript file; its format comes from the extension, else from its content.

    Raises TranscriptError (with a message for users) for a file that cannot be a transcript at all.
    """
    raw = bytes(raw)
    if len(raw) > MAX_TRANSCRIPT_BYTES:
        raise TranscriptError(
            f"The transcript file is too large ({len(raw):,} bytes); the limit is "
            f"{MAX_TRANSCRIPT_BYTES // 1024 // 1024} MiB."
        )
    kind = _binary_kind(raw)
    if kind:
        raise TranscriptError(
            f"The file looks like {kind}, not a transcript; expected a .txt, .json, .vtt or .srt text file."
        )
    decoded, encoding, replaced = _decode(raw)
    binary_chars = len(decoded) - len(_BINARY_CHARS_RE.sub("", decoded))
    if binary_chars > len(decoded) * _BINARY_MAX_RATIO:
        raise TranscriptError(
            "The file is not readable text: it looks like a binary file or uses an unsupported character "
            "encoding (expected UTF-8, UTF-16 or Windows-1252)."
        )
    text = _clean_decoded(decoded)
    fmt = _format_from_filename(filename) or _sniff_format(text)
    language = ""
    segments: list[Segment]
    if not text.strip():
        segments = []
    elif fmt == "json":
        segments, language = _parse_json(text)
    elif fmt in {"vtt", "srt"}:
        if _TIMING_LINE_RE.search(text) is None:
            # A subtitle file without a single timing line: its text is all there is.
            fmt = "txt"
            segments = _parse_txt(_strip_webvtt_header(text))
        elif fmt == "vtt":
            segments, language = _parse_vtt(text)
        else:
            segments = _parse_srt(text)
    else:
        segments = _parse_txt(text)
    return ParsedTranscript(
        text=transcript_text(segments),
        segments=segments,
        encoding=encoding,
        had_replacements=replaced,
        language=language,
        format=fmt,
    )


def transcript_text(segments: Iterable[Segment]) -> str:
    """The full text of segments: one per line, "Speaker: text" when the speaker is known."""
    return "\n".join(f"{s.speaker}: {s.text}" if s.speaker else s.text for s in segments)


def _binary_kind(raw: bytes) -> str:
    for signature, kind in _BINARY_SIGNATURES:
        if raw.startswith(signature):
            return kind
    if raw[:4] == b"RIFF" and raw[8:12] in {b"WAVE", b"AVI ", b"WEBP"}:
        return "a WAV recording" if raw[8:12] == b"WAVE" else "a RIFF media file"
    if raw[4:8] == b"ftyp":
        return "an MP4 or M4A file"
    return ""


def _format_from_filename(filename: str) -> str:
    name = filename.replace("\\", "/").rsplit("/", 1)[-1]
    if "." not in name:
        return ""
    extension = name.rsplit(".", 1)[-1].strip().lower()
    return extension if extension in FORMATS else ""


def _sniff_format(text: str) -> str:
    head = text.lstrip()
    if head.startswith("WEBVTT"):
        return "vtt"
    if head[:1] in {"{", "["}:
        try:
            json.loads(text)
        except (ValueError, RecursionError):
            pass
        else:
            return "json"
    timing = _TIMING_LINE_RE.search(text)
    if timing is not None:
        return "srt" if "," in timing.group("start") else "vtt"
    return "txt"


# --- Speakers and times ------------------------------------------------------------------------------------

_NAME = r"[^\W\d_][\w.'\-]*(?:[ \t]+[\w.'\-]+){0,3}"  # a letter first; at most four words
_COLON_LABEL_RE = re.compile(rf"(?P<name>{_NAME})[ \t]?(?::[ \t]+|\uff1a[ \t]*)(?P<text>\S.*)")
_BARE_COLON_LABEL_RE = re.compile(rf"(?P<name>{_NAME})[ \t]?[:\uff1a][ \t]*")
_BRACKET_LABEL_RE = re.compile(rf"\[[ \t]*(?P<name>{_NAME})[ \t]*\][ \t]*[:\uff1a]?[ \t]*(?P<text>.*)")
# Bracketed annotations of transcripts that are not speakers: "[Music] hold on", "[inaudible]".
_ANNOTATIONS = frozenset(
    {
        "applause",
        "background noise",
        "beep",
        "blank audio",
        "crosstalk",
        "foreign",
        "hold music",
        "inaudible",
        "laughs",
        "laughter",
        "music",
        "noise",
        "pause",
        "ringing",
        "silence",
        "unintelligible",
    }
)
_TIMESTAMP = r"(?:(?P<{p}h>\d+):)?(?P<{p}m>\d{{1,2}}):(?P<{p}s>\d{{1,2}})(?:[.,](?P<{p}f>\d+))?"
_TIMESTAMP_RE = re.compile(_TIMESTAMP.format(p=""))
_TXT_TIMESTAMP_PREFIX_RE = re.compile(r"\[(?P<ts>" + _TIMESTAMP.format(p="") + r")\][ \t]*")
_TIMING_LINE_RE = re.compile(
    r"^[ \t]*(?P<start>"
    + _TIMESTAMP.format(p="a")
    + r")[ \t]*--?>[ \t]*(?P<end>"
    + _TIMESTAMP.format(p="b")
    + r")(?:[ \t].*)?$",
    re.MULTILINE,
)
_WHITESPACE_RE = re.compile(r"\s+")


def _clean_speaker(value: str) -> str:
    return _WHITESPACE_RE.sub(" ", value).strip()[:SPEAKER_MAX_LENGTH]


def _speaker_label(name: str) -> str | None:
    """The speaker named by a label, or None when the label is not a plausible speaker name."""
    name = _clean_speaker(name)
    if not name or len(name) > SPEAKER_LABEL_MAX_LENGTH or name.lower() in _ANNOTATIONS:
        return None
    return name


def _split_speaker(line: str, *, brackets: bool) -> tuple[str | None, str]:
    """("Agent", "hello") for "Agent: hello" (and "[Agent] hello" when brackets), else (None, line)."""
    patterns = (_COLON_LABEL_RE, _BRACKET_LABEL_RE) if brackets else (_COLON_LABEL_RE,)
    for pattern in patterns:
        match = pattern.fullmatch(line)
        if match is not None:
            speaker = _speaker_label(match.group("name"))
            if speaker is not None:
                return speaker, match.group("text").strip()
    return None, line


def _checked_ms(value: int) -> int | None:
    return value if 0 <= value <= _MAX_MS else None


def _timestamp_ms(match: re.Match[str], prefix: str = "") -> int | None:
    hours = int(match.group(prefix + "h") or 0)
    minutes = int(match.group(prefix + "m"))
    seconds = int(match.group(prefix + "s"))
    fraction = (match.group(prefix + "f") or "")[:3].ljust(3, "0")  # "1.5" is 1.500 s
    return _checked_ms(((hours * 60 + minutes) * 60 + seconds) * 1000 + int(fraction))


def _segment(speaker: str, start_ms: int | None, end_ms: int | None, text: str) -> Segment:
    if start_ms is not None and end_ms is not None and end_ms < start_ms:
        end_ms = None  # an end before the start is a typo of one or the other; the start orders the segments
    return Segment(speaker=speaker, start_ms=start_ms, end_ms=end_ms, text=text)


# --- Plain text --------------------------------------------------------------------------------------------


def _parse_txt(text: str) -> list[Segment]:
    """One segment per non-empty line.

    "Agent: hello", "CALLER: hi" and "[Caller] hi" name their speaker; a leading "[00:01:02]" (or "[01:02.5]")
    is the start time. A line holding only a label ("Agent:" or "[Agent]") names the speaker of the unlabelled
    lines that follow it, up to the next labelled line; other unlabelled lines have speaker "".
    """
    segments: list[Segment] = []
    heading = ""
    for raw_line in text.split("\n"):
        line = raw_line.strip()
        if not line:
            continue
        start_ms = None
        timestamp = _TXT_TIMESTAMP_PREFIX_RE.match(line)
        if timestamp is not None:
            start_ms = _timestamp_ms(timestamp)
            line = line[timestamp.end() :]
        bare = _BARE_COLON_LABEL_RE.fullmatch(line) or _BRACKET_LABEL_RE.fullmatch(line)
        if bare is not None and not bare.groupdict().get("text"):
            label = _speaker_label(bare.group("name"))
            if label is not None:
                heading = label
                continue
        speaker, line_text = _split_speaker(line, brackets=True)
        if speaker is None:
            speaker = heading
        else:
            heading = ""
        if line_text:
            segments.append(_segment(speaker, start_ms, None, line_text))
    return segments


# --- JSON --------------------------------------------------------------------------------------------------

_SPEAKER_KEYS = ("speaker", "role")
_TEXT_KEYS = ("text", "transcript", "content")


def _parse_json(text: str) -> tuple[list[Segment], str]:
    """Segments and language of a JSON transcript.

    Shapes: {"segments": [...], "language", "text"} (ours, Whisper/OpenAI verbose_json); a bare list of
    segments; {"utterances": [...]} (AssemblyAI-like; Deepgram's {"results": {"utterances": [...]}} too);
    {"text": "..."} alone (one segment without times). A segment has "text" (or "transcript", "content"),
    "speaker" (or "role"), and times as "start_ms"/"end_ms" in milliseconds or "start"/"end" in seconds --
    except in AssemblyAI documents (recognised by "audio_url"), whose "start"/"end" are milliseconds.
    When segments are present, a top-level "text" is ignored: the full text is rebuilt from the segments.
    """
    try:
        data = json.loads(text)
    except RecursionError:
        raise TranscriptError("The JSON transcript is nested too deeply to be a transcript.") from None
    except ValueError as exc:
        raise TranscriptError(f"The transcript is not valid JSON ({exc}).") from None
    if isinstance(data, list):
        return _json_segments(data, seconds=True), ""
    if not isinstance(data, dict):
        raise TranscriptError(
            f"The JSON transcript is {_json_type(data)}; expected an object with segments or text, or a list of "
            "segments."
        )
    language = _json_language(data)
    segments: list[Segment] | None = None
    if data.get("segments") is not None:
        segments = _json_segments(_json_list(data["segments"], '"segments"'), seconds=True)
    elif data.get("utterances") is not None:
        seconds = "audio_url" not in data  # AssemblyAI times are milliseconds
        segments = _json_segments(_json_list(data["utterances"], '"utterances"'), seconds=seconds)
    elif isinstance(data.get("results"), dict):
        segments, results_language = _deepgram(data["results"])
        language = language or results_language
    if not segments:
        whole = _json_text(data)
        if whole is not None:
            segments = [Segment(speaker="", start_ms=None, end_ms=None, text=whole)] if whole else []
    if segments is None:
        raise TranscriptError('The JSON transcript has none of the expected keys: "segments", "utterances" or "text".')
    return segments, language


def _deepgram(results: Mapping[str, object]) -> tuple[list[Segment], str]:
    """Deepgram's {"results": {"utterances": [...], "channels": [{"alternatives": [{"transcript"}]}]}}."""
    utterances = results.get("utterances")
    if utterances is not None:
        return _json_segments(_json_list(utterances, '"results.utterances"'), seconds=True), ""
    channels = results.get("channels")
    if isinstance(channels, list) and channels and isinstance(channels[0], dict):
        channel = channels[0]
        detected = channel.get("detected_language")
        language = _fitting_language(detected)
        alternatives = channel.get("alternatives")
        if isinstance(alternatives, list) and alternatives and isinstance(alternatives[0], dict):
            whole = _json_text(alternatives[0])
            if whole:
                return [Segment(speaker="", start_ms=None, end_ms=None, text=whole)], language
            return [], language
    raise TranscriptError('The JSON transcript has "results" without "utterances" or "channels" with a transcript.')


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _json_list(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise TranscriptError(f"In the JSON transcript, {where} is {_json_type(value)}; expected a list.")
    return value


def _json_text(item: Mapping[str, object], where: str = "The JSON transcript") -> str | None:
    """The item's text, cleaned ("" when blank), or None when it has none."""
    for key in _TEXT_KEYS:
        value = item.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise TranscriptError(f'{where}: "{key}" is {_json_type(value)}; expected a string.')
        return _clean_decoded(value).strip()
    return None


def _json_language(data: Mapping[str, object]) -> str:
    for key in ("language", "language_code"):
        language = _fitting_language(data.get(key))
        if language:
            return language
    return ""


def _fitting_language(value: object) -> str:
    if not isinstance(value, str):
        return ""
    value = value.strip()
    return value if len(value) <= LANGUAGE_MAX_LENGTH else ""


def _json_segments(items: Sequence[object], *, seconds: bool) -> list[Segment]:
    segments: list[Segment] = []
    for index, item in enumerate(items, start=1):
        where = f"Segment {index} of the JSON transcript"
        if not isinstance(item, dict):
            raise TranscriptError(f"{where} is {_json_type(item)}; expected an object.")
        text = _json_text(item, where)
        if not text:
            continue
        start_ms = _json_time(item, "start", where, seconds=seconds)
        end_ms = _json_time(item, "end", where, seconds=seconds)
        segments.append(_segment(_json_speaker(item, where), start_ms, end_ms, text))
    return segments


def _json_speaker(item: Mapping[str, object], where: str) -> str:
    for key in _SPEAKER_KEYS:
        value = item.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            return _clean_speaker(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return f"Speaker {value}"
        raise TranscriptError(f'{where}: "{key}" is {_json_type(value)}; expected a name or a number.')
    return ""


def _json_time(item: Mapping[str, object], name: str, where: str, *, seconds: bool) -> int | None:
    """Milliseconds from "<name>_ms" (milliseconds) or "<name>" (seconds, unless seconds=False)."""
    for key, scale in ((f"{name}_ms", 1), (name, 1000 if seconds else 1)):
        value = item.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            return _json_time_string(value, scale=scale, where=f'{where}: "{key}"')
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TranscriptError(f'{where}: "{key}" is {_json_type(value)}; expected a number.')
        return _scaled_ms(value, scale)
    return None


def _json_time_string(value: str, *, scale: int, where: str) -> int | None:
    """A time written as a string: a number ("1.25") or a timestamp ("00:00:01.250")."""
    value = value.strip()
    if not value:
        return None
    timestamp = _TIMESTAMP_RE.fullmatch(value)
    if timestamp is not None:
        return _timestamp_ms(timestamp)
    try:
        number = float(value)
    except ValueError:
        raise TranscriptError(f'{where} is "{value[:40]}"; expected a number or a timestamp.') from None
    return _scaled_ms(number, scale)


def _scaled_ms(value: float, scale: int) -> int | None:
    if isinstance(value, int):
        return _checked_ms(value * scale)
    scaled = value * scale
    if not math.isfinite(scaled) or not 0 <= scaled <= _MAX_MS:
        return None
    return _checked_ms(round(scaled))


# --- WebVTT and SubRip cues --------------------------------------------------------------------------------

_VOICE_TAG_RE = re.compile(r"<v(?:\.[^\s>]*)?(?:[ \t]+(?P<name>[^>]*))?>", re.IGNORECASE)
_TAG_RE = re.compile(r"<[^<>]*>")
_ASS_OVERRIDE_RE = re.compile(r"\{\\[^{}]*\}")  # {\an8} in SubRip files
_BLOCK_KINDS = ("NOTE", "STYLE", "REGION")


def _parse_vtt(text: str) -> tuple[list[Segment], str]:
    """WebVTT, parsed by hand: tolerant of a missing header, "," decimal marks, missing blank lines.

    Speakers come from voice tags (<v Agent>, <v.loud Agent>), else from a "Name: text" prefix; other tags
    (<c>, <i>, <00:00:01.000>, </v>) are stripped and entities unescaped. NOTE, STYLE and REGION blocks and cue
    identifiers are skipped. The header's "Language:" line (YouTube) gives the language.
    """
    language = ""
    lines = text.split("\n")
    if lines and lines[0].lstrip().startswith("WEBVTT"):
        index = 1
        while index < len(lines) and lines[index].strip() and "-->" not in lines[index]:
            key, _, value = lines[index].partition(":")
            if key.strip().lower() == "language":
                language = _fitting_language(value)
            index += 1
        lines = lines[index:]
    return _parse_cue_blocks(lines), language


def _strip_webvtt_header(text: str) -> str:
    lines = text.split("\n")
    if lines and lines[0].lstrip().startswith("WEBVTT"):
        index = 1
        while index < len(lines) and lines[index].strip():
            index += 1
        return "\n".join(lines[index:])
    return text


def _parse_cue_blocks(lines: Sequence[str]) -> list[Segment]:
    segments: list[Segment] = []
    for block in _blocks(lines):
        first = block[0].strip()
        if any(first == kind or first.startswith((kind + " ", kind + "\t")) for kind in _BLOCK_KINDS):
            continue
        timing: re.Match[str] | None = None
        cue_lines: list[str] = []
        for line in block:
            match = _TIMING_LINE_RE.fullmatch(line)
            if match is None:
                if timing is not None:
                    cue_lines.append(line)
                continue  # before the timing line: the cue identifier (or stray text)
            if timing is not None:
                # A cue not separated from the next one by a blank line; a number just before the timing line
                # is the next cue's identifier.
                if cue_lines and cue_lines[-1].strip().isdigit():
                    cue_lines.pop()
                segments.extend(_cue_segments(cue_lines, _timestamp_ms(timing, "a"), _timestamp_ms(timing, "b")))
            timing, cue_lines = match, []
        if timing is not None:
            segments.extend(_cue_segments(cue_lines, _timestamp_ms(timing, "a"), _timestamp_ms(timing, "b")))
    return segments


def _blocks(lines: Iterable[str]) -> Iterable[list[str]]:
    block: list[str] = []
    for line in lines:
        if line.strip():
            block.append(line)
        elif block:
            yield block
            block = []
    if block:
        yield block


def _parse_srt(text: str) -> list[Segment]:
    """SubRip through the ``srt`` package; a file it refuses is parsed by the tolerant cue parser instead.

    (``srt.parse(ignore_errors=True)`` would log the skipped parts -- transcript text -- as warnings.)
    """
    try:
        subtitles = list(srt.parse(text))
    except (srt.SRTParseError, srt.TimestampParseError, ValueError, OverflowError):
        return _parse_cue_blocks(text.split("\n"))
    segments: list[Segment] = []
    for subtitle in subtitles:
        start_ms = _checked_ms(subtitle.start // timedelta(milliseconds=1))
        end_ms = _checked_ms(subtitle.end // timedelta(milliseconds=1))
        segments.extend(_cue_segments(str(subtitle.content).split("\n"), start_ms, end_ms))
    return segments


def _cue_segments(lines: Iterable[str], start_ms: int | None, end_ms: int | None) -> list[Segment]:
    """The segments of one cue: one per speaker, lines joined with spaces.

    With voice tags, each tag starts the text of its voice (text before the first has speaker ""). Without,
    each line may start with "Name: "; lines without continue the previous speaker's text.
    """
    pieces: list[tuple[str, list[str]]] = []

    def add(speaker: str, fragment: str) -> None:  # fragment: already cleaned by _cue_text
        if not fragment:
            return
        if pieces and pieces[-1][0] == speaker:
            pieces[-1][1].append(fragment)
        else:
            pieces.append((speaker, [fragment]))

    lines = list(lines)
    if any(_VOICE_TAG_RE.search(line) for line in lines):
        voice = ""
        for line in lines:
            position = 0
            for match in _VOICE_TAG_RE.finditer(line):
                add(voice, _cue_text(line[position : match.start()]))
                voice = _clean_speaker(match.group("name") or "")
                position = match.end()
            add(voice, _cue_text(line[position:]))
    else:
        speaker = ""
        for line in lines:
            labelled, rest = _split_speaker(_cue_text(line), brackets=False)
            if labelled is not None:
                speaker = labelled
            add(speaker, rest)
    return [_segment(speaker, start_ms, end_ms, " ".join(texts)) for speaker, texts in pieces]


def _cue_text(fragment: str) -> str:
    fragment = _ASS_OVERRIDE_RE.sub("", _TAG_RE.sub("", fragment))
    return _WHITESPACE_RE.sub(" ", html.unescape(fragment)).strip()
