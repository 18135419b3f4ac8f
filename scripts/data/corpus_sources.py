"""The gettext fallback source of scripts/data/build_corpus.py: English/German UI strings from compiled ``.mo``
catalogs (used when the Ding dictionary cannot be installed), and the corpus builder's error type."""
import re
import struct


class CorpusError(ValueError):
    """The corpus source is missing, unreadable or yields no usable pairs."""


_MO_MAGIC = {0x950412DE: "<", 0xDE120495: ">"}
_ACCELERATOR = re.compile(r"[_&](?=\w)")
_UNNATURAL = re.compile(r"[%{}<>\\\t\n\r]|\$\w|^\W*$")


def read_mo_catalog(path):
    """Return ``[(msgid, msgstr), ...]`` from a compiled gettext ``.mo`` file.

    Parsed with ``struct`` (GNU .mo layout: magic, revision, count, offsets
    of the original and translation tables) so no locale setup is needed.
    Plural entries keep their singular form; message contexts are dropped.
    """
    with open(path, "rb") as handle:
        data = handle.read()
    if len(data) < 20:
        raise CorpusError(f"{path}: not a gettext .mo file (too short)")
    magic = struct.unpack("<I", data[:4])[0]
    if magic not in _MO_MAGIC:
        raise CorpusError(f"{path}: not a gettext .mo file (bad magic number)")
    order = _MO_MAGIC[magic]
    _, count, originals, translations = struct.unpack(order + "4I", data[4:20])

    def string_at(table, index):
        length, offset = struct.unpack(order + "2I", data[table + 8 * index : table + 8 * index + 8])
        return data[offset : offset + length]

    entries = []
    for index in range(count):
        msgid = string_at(originals, index)
        msgstr = string_at(translations, index)
        if not msgid:  # the header entry
            continue
        msgid = msgid.split(b"\x04")[-1].split(b"\x00")[0]
        msgstr = msgstr.split(b"\x00")[0]
        try:
            entries.append((msgid.decode("utf-8"), msgstr.decode("utf-8")))
        except UnicodeDecodeError:
            continue  # a catalog in a legacy charset; rare, not worth guessing
    return entries


def clean_ui_string(text):
    """Return a UI string as plain text, or ``None`` if it is not prose
    (format placeholders, markup, escapes, multi-line help texts)."""
    if _UNNATURAL.search(text):
        return None
    return " ".join(_ACCELERATOR.sub("", text).split())


def gettext_pairs(paths):
    """Yield ``(english, german)`` pairs from the given ``.mo`` catalogs."""
    for path in paths:
        for msgid, msgstr in read_mo_catalog(path):
            english, german = clean_ui_string(msgid), clean_ui_string(msgstr)
            if english and german:
                yield english, german
