"""calls.transcripts: decoding transcript bytes and parsing .txt, .json, .vtt and .srt files (no database)."""

from __future__ import annotations

import codecs
import json
import random

import pytest

from calls.transcripts import (
    MAX_TRANSCRIPT_BYTES,
    ParsedTranscript,
    Segment,
    TranscriptError,
    decode_transcript_bytes,
    parse_transcript,
)


def seg(speaker: str, start_ms: int | None, end_ms: int | None, text: str) -> Segment:
    return Segment(speaker=speaker, start_ms=start_ms, end_ms=end_ms, text=text)


def untimed(speaker: str, text: str) -> Segment:
    return Segment(speaker=speaker, start_ms=None, end_ms=None, text=text)


# --- Decoding ----------------------------------------------------------------------------------------------


def test_it_decodes_a_utf8_txt_with_accents():
    raw = "Agent: Bonjour, ça va très bien ?\nCaller: Oui, merci. À bientôt, Zoë!\n".encode()

    parsed = parse_transcript(raw=raw, filename="calls/abc/transcript.txt")

    assert parsed == ParsedTranscript(
        text="Agent: Bonjour, ça va très bien ?\nCaller: Oui, merci. À bientôt, Zoë!",
        segments=[untimed("Agent", "Bonjour, ça va très bien ?"), untimed("Caller", "Oui, merci. À bientôt, Zoë!")],
        encoding="utf-8",
        had_replacements=False,
        language="",
        format="txt",
    )


def test_it_decodes_utf8_whose_bytes_contain_0x8f_as_utf8_not_cp1252():
    text = "Agent: Ïris from Kŏrea, Əli, 從 here\nCaller: 從前 ÏÏ"
    raw = text.encode()
    assert b"\x8f" in raw  # C3 8F, C5 8F, C6 8F, E5 BE 9E... the classic cp1252-first trap

    parsed = parse_transcript(raw=raw, filename="t.txt")

    assert parsed.encoding == "utf-8"
    assert parsed.had_replacements is False
    assert parsed.text == text
    assert parsed.segments == [untimed("Agent", "Ïris from Kŏrea, Əli, 從 here"), untimed("Caller", "從前 ÏÏ")]


def test_it_decodes_a_cp1252_txt():
    raw = "Agent: café – résumé “quoted”\r\nCaller: naïve… ok\r\n".encode("cp1252")  # noqa: RUF001
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")

    parsed = parse_transcript(raw=raw, filename="t.txt")

    assert parsed.encoding == "cp1252"
    assert parsed.had_replacements is False
    assert parsed.text == "Agent: café – résumé “quoted”\nCaller: naïve… ok"  # noqa: RUF001
    assert parsed.segments == [untimed("Agent", "café – résumé “quoted”"), untimed("Caller", "naïve… ok")]  # noqa: RUF001


def test_it_decodes_a_utf16_le_txt_with_a_bom():
    raw = codecs.BOM_UTF16_LE + "Agent: Grüß Gott\r\nCaller: 你好\r\n".encode("utf-16-le")

    parsed = parse_transcript(raw=raw, filename="t.txt")

    assert parsed.encoding == "utf-16-le"
    assert parsed.had_replacements is False
    assert parsed.text == "Agent: Grüß Gott\nCaller: 你好"
    assert parsed.segments == [untimed("Agent", "Grüß Gott"), untimed("Caller", "你好")]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (codecs.BOM_UTF16_BE + "Agent: hé\n".encode("utf-16-be"), ("Agent: hé\n", "utf-16-be", False)),
        (codecs.BOM_UTF8 + "Agent: hé\n".encode(), ("Agent: hé\n", "utf-8-sig", False)),
        (codecs.BOM_UTF32_LE + "Agent: hé\n".encode("utf-32-le"), ("Agent: hé\n", "utf-32-le", False)),
        (codecs.BOM_UTF32_BE + "Agent: hé\n".encode("utf-32-be"), ("Agent: hé\n", "utf-32-be", False)),
        # Without a BOM, UTF-16 shows in its NUL bytes.
        ("Agent: hé\r\nCaller: hi\r\n".encode("utf-16-le"), ("Agent: hé\nCaller: hi\n", "utf-16-le", False)),
        ("Agent: hé\r\nCaller: hi\r\n".encode("utf-16-be"), ("Agent: hé\nCaller: hi\n", "utf-16-be", False)),
        # A BOM followed by bytes its encoding cannot decode.
        (codecs.BOM_UTF16_LE + "hi".encode("utf-16-le") + b"!", ("hi\ufffd", "utf-16-le (replaced)", True)),
        (codecs.BOM_UTF8 + b"hi \xff", ("hi \ufffd", "utf-8-sig (replaced)", True)),
        # Nothing decodes: UTF-8 with replacement characters.
        (b"ok \x81\x8d\x8f\x90\x9d done", ("ok \ufffd\ufffd\ufffd\ufffd\ufffd done", "utf-8 (replaced)", True)),
        # Old Mac and Windows newlines, NULs, a doubled BOM.
        (b"a\rb\r\nc\x00d\n", ("a\nb\nc" + "d\n", "utf-8", False)),
        (codecs.BOM_UTF8 + "\ufeffhi".encode(), ("hi", "utf-8-sig", False)),
        (b"", ("", "utf-8", False)),
        (b"\xff\xfe", ("", "utf-16-le", False)),
    ],
)
def test_it_decodes_boms_utf16_newlines_and_undecodable_bytes(raw: bytes, expected: tuple[str, str, bool]):
    assert decode_transcript_bytes(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # Western text: isolated high bytes.
        ("“CAFÉ” déjà".encode("cp1252"), ("“CAFÉ” déjà", "cp1252", False)),
        ("Grüße aus Köln".encode("cp1252"), ("Grüße aus Köln", "cp1252", False)),
        # A UTF-8 file with a stray Latin-1 byte: the valid UTF-8 outvotes it, no mojibake everywhere.
        ("café crème brûlée ".encode() + b"\xe9t\xe9", ("café crème brûlée \ufffdt\ufffd", "utf-8 (replaced)", True)),
        (
            "à bientôt, 1º 2ª, 5 µs, l'été, ¿Qué? ¡Sí!".encode("cp1252"),
            ("à bientôt, 1º 2ª, 5 µs, l'été, ¿Qué? ¡Sí!", "cp1252", False),
        ),
        # ASCII with a burst of damaged bytes: not Western text ("ÿþÃ(").
        (b"Hello \xff\xfe\xc3\x28 there", ("Hello \ufffd\ufffd\ufffd( there", "utf-8 (replaced)", True)),
        # Letters standing alone outside any word ("hello Ã( there ÿ", "a ÿþ b"): damaged UTF-8 too.
        (b"hello \xc3\x28 there \xff\n", ("hello \ufffd( there \ufffd\n", "utf-8 (replaced)", True)),
        (b"a \xff\xfe b", ("a \ufffd\ufffd b", "utf-8 (replaced)", True)),
    ],
)
def test_it_tells_cp1252_text_from_damaged_utf8(raw: bytes, expected: tuple[str, str, bool]):
    assert decode_transcript_bytes(raw) == expected


def test_it_takes_ff_fe_for_a_bom_only_at_the_start():
    assert decode_transcript_bytes(b"\xff\xfeA\x00g\x00:\x00 \x00h\x00i\x00") == ("Ag: hi", "utf-16-le", False)
    damaged = decode_transcript_bytes(b"Ag: a \xff\xfe\xc3\x28 b")

    assert damaged == ("Ag: a \ufffd\ufffd\ufffd( b", "utf-8 (replaced)", True)


# --- Plain text --------------------------------------------------------------------------------------------


def test_it_reads_speakers_in_txt_without_mistaking_times_or_urls_for_them():
    raw = (
        b"Agent: Hello, this is Dana.\n"
        b"\n"
        b"   CALLER:   Hi!  \n"
        b"[Caller] I wanted to ask about the 10:30 slot.\n"
        b"10:30 meeting works\n"
        b"Call me at 10:30: great\n"
        b"See https://example.com/a:b\n"
        b"Speaker 1: numbered\n"
        b"Well I told him the price was: twenty\n"
        b"[Music] hold on\n"
        b"[00:01:02.5] Agent: timed\n"
        b"[01:05] untimed speaker\n"
        b"Agent:no space after the colon\n"
    )

    parsed = parse_transcript(raw=raw, filename="t.txt")

    assert parsed.segments == [
        untimed("Agent", "Hello, this is Dana."),
        untimed("CALLER", "Hi!"),
        untimed("Caller", "I wanted to ask about the 10:30 slot."),
        untimed("", "10:30 meeting works"),
        untimed("", "Call me at 10:30: great"),
        untimed("", "See https://example.com/a:b"),
        untimed("Speaker 1", "numbered"),
        untimed("", "Well I told him the price was: twenty"),
        untimed("", "[Music] hold on"),
        seg("Agent", 62500, None, "timed"),
        seg("", 65000, None, "untimed speaker"),
        untimed("", "Agent:no space after the colon"),
    ]
    assert parsed.text.splitlines()[:3] == [
        "Agent: Hello, this is Dana.",
        "CALLER: Hi!",
        "Caller: I wanted to ask about the 10:30 slot.",
    ]
    assert (parsed.format, parsed.encoding, parsed.had_replacements, parsed.language) == ("txt", "utf-8", False, "")


def test_it_gives_the_speaker_of_a_label_line_to_the_lines_that_follow():
    raw = b"Agent:\nHello there.\nHow can I help?\n[Caller]\nMy order.\nAgent: Sure.\nunlabelled\n"

    parsed = parse_transcript(raw=raw, filename="t.txt")

    assert parsed.segments == [
        untimed("Agent", "Hello there."),
        untimed("Agent", "How can I help?"),
        untimed("Caller", "My order."),
        untimed("Agent", "Sure."),
        untimed("", "unlabelled"),
    ]
    assert parsed.text == "Agent: Hello there.\nAgent: How can I help?\nCaller: My order.\nAgent: Sure.\nunlabelled"


def test_it_parses_an_empty_file_as_an_empty_transcript():
    for filename in ("t.txt", "t.json", "t.vtt", "t.srt", "t"):
        parsed = parse_transcript(raw=b" \r\n\n", filename=filename)

        assert (parsed.text, parsed.segments, parsed.encoding, parsed.had_replacements) == ("", [], "utf-8", False)


# --- JSON --------------------------------------------------------------------------------------------------


def test_it_parses_our_json_with_timed_segments():
    document = {
        "language": "en",
        "segments": [
            {"speaker": "agent", "start_ms": 0, "end_ms": 1320, "text": "Hi, this is Callbook."},
            {"speaker": "caller", "start_ms": 1500, "end_ms": 2900, "text": " Hello! "},
            {"speaker": " ", "start_ms": 3000, "end_ms": None, "text": "(no speaker)"},
            {"speaker": "agent", "start_ms": 3100, "end_ms": 3200, "text": "   "},
        ],
    }

    parsed = parse_transcript(raw=json.dumps(document).encode(), filename="transcript.json")

    assert parsed == ParsedTranscript(
        text="agent: Hi, this is Callbook.\ncaller: Hello!\n(no speaker)",
        segments=[
            seg("agent", 0, 1320, "Hi, this is Callbook."),
            seg("caller", 1500, 2900, "Hello!"),
            seg("", 3000, None, "(no speaker)"),
        ],
        encoding="utf-8",
        had_replacements=False,
        language="en",
        format="json",
    )


def test_it_parses_whisper_verbose_json_with_times_in_seconds():
    document = {
        "task": "transcribe",
        "language": "english",
        "duration": 4.2,
        "text": " Hello there. How are you?",
        "segments": [
            {"id": 0, "seek": 0, "start": 0.0, "end": 1.32, "text": " Hello there.", "tokens": [1, 2]},
            {"id": 1, "seek": 0, "start": 1.5, "end": 4.2, "text": " How are you?", "tokens": [3]},
        ],
    }

    parsed = parse_transcript(raw=json.dumps(document).encode(), filename="whisper.json")

    assert parsed.segments == [seg("", 0, 1320, "Hello there."), seg("", 1500, 4200, "How are you?")]
    assert (parsed.text, parsed.language, parsed.format) == ("Hello there.\nHow are you?", "english", "json")
    assert (parsed.encoding, parsed.had_replacements) == ("utf-8", False)


def test_it_parses_a_bare_list_and_a_text_only_json():
    listed = parse_transcript(raw=b'[{"speaker": "Agent", "start": 1, "end": 2, "text": "Hi"}]', filename="a.json")
    text_only = parse_transcript(raw=b'{"text": "  Hello\\r\\nthere  "}', filename="b.json")

    assert (listed.segments, listed.text, listed.language) == ([seg("Agent", 1000, 2000, "Hi")], "Agent: Hi", "")
    assert (text_only.segments, text_only.text) == ([untimed("", "Hello\nthere")], "Hello\nthere")
    assert (text_only.encoding, text_only.had_replacements, text_only.format) == ("utf-8", False, "json")


def test_it_parses_deepgram_and_assemblyai_utterances():
    deepgram = {
        "metadata": {},
        "results": {
            "channels": [{"alternatives": [{"transcript": "hi there"}], "detected_language": "en"}],
            "utterances": [
                {"speaker": 0, "start": 1.2, "end": 2.0, "transcript": "Hi"},
                {"speaker": 1, "start": 2.25, "end": 3.5, "transcript": "there"},
            ],
        },
    }
    assemblyai = {
        "id": "abc",
        "audio_url": "https://example.com/a.mp3",
        "language_code": "en_us",
        "text": "Hi there",
        "utterances": [
            {"speaker": "A", "start": 1200, "end": 2000, "text": "Hi"},
            {"speaker": "B", "start": 2250, "end": 3500, "text": "there"},
        ],
    }
    plain = {"utterances": [{"speaker": 0, "start": 1.2, "end": 2.0, "text": "Hi"}]}

    parsed_deepgram = parse_transcript(raw=json.dumps(deepgram).encode(), filename="dg.json")
    parsed_assemblyai = parse_transcript(raw=json.dumps(assemblyai).encode(), filename="aai.json")
    parsed_plain = parse_transcript(raw=json.dumps(plain).encode(), filename="u.json")

    assert parsed_deepgram.segments == [seg("Speaker 0", 1200, 2000, "Hi"), seg("Speaker 1", 2250, 3500, "there")]
    assert parsed_deepgram.text == "Speaker 0: Hi\nSpeaker 1: there"
    assert parsed_assemblyai.segments == [seg("A", 1200, 2000, "Hi"), seg("B", 2250, 3500, "there")]
    assert (parsed_assemblyai.text, parsed_assemblyai.language) == ("A: Hi\nB: there", "en_us")
    assert parsed_plain.segments == [seg("Speaker 0", 1200, 2000, "Hi")]


def test_it_parses_a_deepgram_transcript_without_utterances():
    document = {"results": {"channels": [{"detected_language": "fr", "alternatives": [{"transcript": "Allô"}]}]}}

    parsed = parse_transcript(raw=json.dumps(document).encode(), filename="dg.json")

    assert (parsed.segments, parsed.text, parsed.language) == ([untimed("", "Allô")], "Allô", "fr")


def test_it_accepts_role_and_content_and_times_written_as_strings():
    document = [
        {"role": "agent", "content": "Hi", "start": "1.5", "end": "00:00:02.250"},
        {"speaker": 2.0, "text": "Yo", "start_ms": "3000", "end_ms": ""},
    ]

    parsed = parse_transcript(raw=json.dumps(document).encode(), filename="t.json")

    assert parsed.segments == [seg("agent", 1500, 2250, "Hi"), seg("Speaker 2", 3000, None, "Yo")]


def test_it_mends_impossible_times_in_json():
    document = {
        "segments": [
            {"speaker": "a", "start_ms": 5000, "end_ms": 4000, "text": "end before start: end dropped"},
            {"speaker": "a", "start_ms": -5, "end_ms": 10, "text": "negative start: dropped"},
            {"speaker": "a", "start": 1e300, "end": 1e400, "text": "absurd: dropped"},
            {"speaker": "a", "start_ms": 2**70, "end_ms": 1.4, "text": "too large; fractions rounded"},
        ]
    }
    raw = json.dumps(document).encode().replace(b"Infinity", b"1e400")

    parsed = parse_transcript(raw=raw, filename="t.json")

    assert parsed.segments == [
        seg("a", 5000, None, "end before start: end dropped"),
        seg("a", None, 10, "negative start: dropped"),
        seg("a", None, None, "absurd: dropped"),
        seg("a", None, 1, "too large; fractions rounded"),
    ]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "The transcript is not valid JSON (Expecting property name enclosed in double quotes"),
        (b'"just a string"', "The JSON transcript is a string; expected an object with segments or text"),
        (b"42", "The JSON transcript is a number;"),
        (b"null", "The JSON transcript is null;"),
        (b'{"foo": 1}', 'The JSON transcript has none of the expected keys: "segments", "utterances" or "text".'),
        (b'{"segments": {"a": 1}}', 'In the JSON transcript, "segments" is an object; expected a list.'),
        (b'{"utterances": "x"}', 'In the JSON transcript, "utterances" is a string; expected a list.'),
        (b'{"segments": [1]}', "Segment 1 of the JSON transcript is a number; expected an object."),
        (b'[{"text": "ok"}, {"text": 5}]', 'Segment 2 of the JSON transcript: "text" is a number; expected a string.'),
        (b'[{"text": "a", "speaker": true}]', 'Segment 1 of the JSON transcript: "speaker" is a boolean; expected a'),
        (b'[{"text": "a", "start": [1]}]', 'Segment 1 of the JSON transcript: "start" is a list; expected a number.'),
        (b'[{"text": "a", "end_ms": "soon"}]', 'Segment 1 of the JSON transcript: "end_ms" is "soon"; expected a'),
        (b'{"text": 5}', 'The JSON transcript: "text" is a number; expected a string.'),
        (b'{"results": {"x": 1}}', 'The JSON transcript has "results" without "utterances" or "channels"'),
        (b"[" * 100_000, "The JSON transcript is nested too deeply to be a transcript."),
    ],
)
def test_it_refuses_json_of_the_wrong_shape_with_a_clear_message(raw: bytes, message: str):
    with pytest.raises(TranscriptError) as caught:
        parse_transcript(raw=raw, filename="t.json")

    assert str(caught.value).startswith(message)


# --- WebVTT ------------------------------------------------------------------------------------------------

VTT = """WEBVTT - a call
Kind: captions
Language: en

NOTE
This is a comment with 00:00:09.000 in it.

STYLE
::cue(v[voice="Agent"]) { color: blue }

intro
00:00:00.000 --> 00:00:02.500 align:start position:10%
<v Agent>Hello, thanks for calling.</v>

2
00:00:02.700 --> 00:00:05.000
<v.loud.angry Caller>I have been <i>waiting</i>
for <c.yellow>an hour</c> &amp; more!</v>

00:06.000 --> 00:07.250
<v Agent>Sorry<00:00:06.500> about that.</v> <v Caller>Fine.

00:00:08.000 --> 00:00:09.000
Agent: A prefix instead of a voice.

00:00:09.000 --> 00:00:10.000
<b></b>
"""


def test_it_parses_webvtt_voices_ids_notes_styles_and_tags():
    parsed = parse_transcript(raw=VTT.encode(), filename="call.vtt")

    assert parsed == ParsedTranscript(
        text=(
            "Agent: Hello, thanks for calling.\n"
            "Caller: I have been waiting for an hour & more!\n"
            "Agent: Sorry about that.\n"
            "Caller: Fine.\n"
            "Agent: A prefix instead of a voice."
        ),
        segments=[
            seg("Agent", 0, 2500, "Hello, thanks for calling."),
            seg("Caller", 2700, 5000, "I have been waiting for an hour & more!"),
            seg("Agent", 6000, 7250, "Sorry about that."),
            seg("Caller", 6000, 7250, "Fine."),
            seg("Agent", 8000, 9000, "A prefix instead of a voice."),
        ],
        encoding="utf-8",
        had_replacements=False,
        language="en",
        format="vtt",
    )


def test_it_parses_webvtt_without_header_or_blank_lines_between_cues():
    raw = b"00:00:01,000 --> 00:00:02,000\n<v Agent>one\n2\n00:00:03.000 --> 00:00:02.000\n<v Caller>two\n"

    parsed = parse_transcript(raw=raw, filename="x.vtt")

    assert parsed.segments == [seg("Agent", 1000, 2000, "one"), seg("Caller", 3000, None, "two")]
    assert (parsed.text, parsed.language, parsed.format) == ("Agent: one\nCaller: two", "", "vtt")


# --- SubRip ------------------------------------------------------------------------------------------------


def test_it_parses_an_srt_with_undecodable_bytes_mid_text():
    raw = (
        b"1\r\n00:00:00,000 --> 00:00:02,500\r\nAgent: Hello, thanks \xff\xfe\xc3\x28 for calling.\r\n\r\n"
        b"2\r\n00:00:02,700 --> 00:00:05,000\r\nCaller: Hi, I have a\r\nquestion.\r\n"
    )

    parsed = parse_transcript(raw=raw, filename="call.srt")

    assert parsed == ParsedTranscript(
        text="Agent: Hello, thanks \ufffd\ufffd\ufffd( for calling.\nCaller: Hi, I have a question.",
        segments=[
            seg("Agent", 0, 2500, "Hello, thanks \ufffd\ufffd\ufffd( for calling."),
            seg("Caller", 2700, 5000, "Hi, I have a question."),
        ],
        encoding="utf-8 (replaced)",
        had_replacements=True,
        language="",
        format="srt",
    )


def test_it_parses_an_srt_with_tags_several_speakers_and_utf8_accents_next_to_damage():
    raw = (
        "1\n00:00:01,000 --> 00:00:02,000\n{\\an8}<i>Agent: Ça va ?</i>\nCaller: Très bien.\n\n"
        "2\n00:00:04,000 --> 00:00:03,000\n<font color='red'>unlabelled</font>\n"
    ).encode() + b"\xe9\n"

    parsed = parse_transcript(raw=raw, filename="call.SRT")

    assert parsed.segments == [
        seg("Agent", 1000, 2000, "Ça va ?"),
        seg("Caller", 1000, 2000, "Très bien."),
        seg("", 4000, None, "unlabelled \ufffd"),
    ]
    assert (parsed.encoding, parsed.had_replacements, parsed.format) == ("utf-8 (replaced)", True, "srt")


def test_it_parses_a_garbled_srt_with_the_tolerant_parser():
    raw = b"junk before\n1\n00:00:01,000 --> 00:00:02,000\nAgent: one\n2\n00:00:03,000 --> 00:00:04,000\nCaller: two"

    parsed = parse_transcript(raw=raw, filename="x.srt")

    assert parsed.segments == [seg("Agent", 1000, 2000, "one"), seg("Caller", 3000, 4000, "two")]
    assert (parsed.text, parsed.encoding, parsed.had_replacements) == ("Agent: one\nCaller: two", "utf-8", False)


def test_it_reads_a_subtitle_file_without_any_timing_as_plain_text():
    parsed = parse_transcript(raw=b"WEBVTT\n\nAgent: hi\nCaller: hello\n", filename="x.vtt")

    assert parsed.segments == [untimed("Agent", "hi"), untimed("Caller", "hello")]
    assert (parsed.format, parsed.text) == ("txt", "Agent: hi\nCaller: hello")


# --- Formats from the content ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "filename", "expected_format", "expected_segments"),
    [
        (b"WEBVTT\n\n00:01.000 --> 00:02.000\n<v A>hi\n", "transcript", "vtt", [seg("A", 1000, 2000, "hi")]),
        (b"1\n00:00:01,000 --> 00:00:02,000\nA: hi\n", "transcript.text", "srt", [seg("A", 1000, 2000, "hi")]),
        (b'  {"text": "hi"}', "upload.bin", "json", [untimed("", "hi")]),
        (b"[Agent] hi", "no_extension", "txt", [untimed("Agent", "hi")]),
        (b"[not json", "", "txt", [untimed("", "[not json")]),
        # The extension wins over the content.
        (b'{"text": "hi"}', "t.txt", "txt", [untimed("", '{"text": "hi"}')]),
    ],
)
def test_it_takes_the_format_from_the_extension_else_from_the_content(
    raw: bytes, filename: str, expected_format: str, expected_segments: list[Segment]
):
    parsed = parse_transcript(raw=raw, filename=filename)

    assert (parsed.format, parsed.segments, parsed.encoding, parsed.had_replacements) == (
        expected_format,
        expected_segments,
        "utf-8",
        False,
    )


# --- Files that are not transcripts ------------------------------------------------------------------------


def test_it_refuses_a_file_over_the_size_limit():
    with pytest.raises(TranscriptError, match=r"too large \(10,485,761 bytes\); the limit is 10 MiB"):
        parse_transcript(raw=b"a" * (MAX_TRANSCRIPT_BYTES + 1), filename="t.txt")

    assert (
        parse_transcript(raw=b"a" * MAX_TRANSCRIPT_BYTES, filename="t.txt").segments[0].text
        == "a" * MAX_TRANSCRIPT_BYTES
    )


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"ID3\x04\x00\x00\x00\x00\x00\x00", "The file looks like an MP3 recording, not a transcript"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "The file looks like a WAV recording, not a transcript"),
        (b"\x00\x00\x00\x20ftypM4A ", "The file looks like an MP4 or M4A file, not a transcript"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "The file looks like a PNG image, not a transcript"),
        (b"%PDF-1.7\n", "The file looks like a PDF document, not a transcript"),
        (b"\x00" * 100, "The file is not readable text"),
        (b"\x01\x02\x03\x04hello\x05\x06", "The file is not readable text"),
        ("中文内容，不是UTF-8".encode("gb18030") * 20, "The file is not readable text"),  # noqa: RUF001
    ],
)
def test_it_refuses_binary_files(raw: bytes, message: str):
    for filename in ("t.txt", "t.json", "t.vtt", "t.srt", "t"):
        with pytest.raises(TranscriptError) as caught:
            parse_transcript(raw=raw, filename=filename)

        assert str(caught.value).startswith(message)


# --- Never crash -------------------------------------------------------------------------------------------

_FRAGMENTS = (
    b"WEBVTT\n",
    b"NOTE ",
    b"00:00:01.000 --> 00:00:02.000\n",
    b"99999999999999:00:00,000 --> 1:2:3,4\n",
    b"00:01.5 --> 00:00.1",
    b"1\n",
    b"\n\n",
    b"\r\n",
    b"<v Agent>",
    b"<v.a.b>",
    b"</v>",
    b"<",
    b">",
    b"Agent: ",
    b"[Caller] ",
    b"[00:00:01] ",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"segments": [',
    b'{"text": "x", "start": 1e999, "speaker": 1}',
    b'"utterances"',
    b",",
    b"\x00",
    b"\xff\xfe",
    b"\xfe\xff",
    b"\xef\xbb\xbf",
    b"\xc3\x8f",
    b"\x8f",
    b"\xe9",
    b"\xf0\x9f\x98",
    b"&amp;",
    b"{\\an8}",
    b"text ",
)


def _random_bytes(rng: random.Random) -> bytes:
    kind = rng.randrange(3)
    if kind == 0:
        return rng.randbytes(rng.randrange(0, 300))
    if kind == 1:
        return b"".join(rng.choice(_FRAGMENTS) for _ in range(rng.randrange(0, 40)))
    # A real transcript with a few bytes flipped.
    base = bytearray(rng.choice([VTT.encode(), json.dumps({"segments": [{"text": "hé", "start": 1}]}).encode()]))
    for _ in range(rng.randrange(1, 6)):
        base[rng.randrange(len(base))] = rng.randrange(256)
    return bytes(base)


def test_it_never_raises_anything_but_transcript_error_on_random_bytes():
    rng = random.Random(1234)  # noqa: S311 -- reproducible test data
    parsed_count = 0
    refusals: list[str] = []
    for _ in range(3000):
        raw = _random_bytes(rng)
        text, encoding, replaced = decode_transcript_bytes(raw)
        assert "\x00" not in text
        assert "\r" not in text
        assert not text.startswith("\ufeff")
        assert replaced == encoding.endswith(" (replaced)")
        for filename in ("t.txt", "t.json", "t.vtt", "t.srt", "t"):
            try:
                parsed = parse_transcript(raw=raw, filename=filename)
            except TranscriptError as exc:
                refusals.append(str(exc))
                continue
            parsed_count += 1
            assert parsed.format in {"txt", "json", "vtt", "srt"}
            assert (parsed.encoding, parsed.had_replacements) == (encoding, replaced)
            assert parsed.text == "\n".join(f"{s.speaker}: {s.text}" if s.speaker else s.text for s in parsed.segments)
            for segment in parsed.segments:
                assert segment.text
                assert segment.text == segment.text.strip()
                assert segment.speaker == segment.speaker.strip()
                assert len(segment.speaker) <= 64
                assert segment.start_ms is None or segment.start_ms >= 0
                assert segment.end_ms is None or segment.end_ms >= 0
                if segment.start_ms is not None and segment.end_ms is not None:
                    assert segment.end_ms >= segment.start_ms
    assert parsed_count > 1000
    assert len(refusals) > 100
    assert all(refusals)
