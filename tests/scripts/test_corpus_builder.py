"""Tests for scripts/data/build_corpus.py on dictionary lines written here."""
import json
import random
import struct

import pytest

import build_corpus as bc


# --- parsing --------------------------------------------------------------


def test_aligned_sub_entries_with_annotations_stripped():
    line = "Haus {n} [arch.] | Häuser {pl} | ein großes Haus bauen (für jdn.) :: house [Br.] | houses | to build a big house (for sb.)"
    assert bc.parse_ding_line(line) == [
        ("house", "Haus"),
        ("houses", "Häuser"),
        ("to build a big house", "ein großes Haus bauen"),
    ]


def test_semicolon_alternatives_pair_by_position_when_counts_match():
    line = "Das ist mir egal.; Das ist mir wurscht. [ugs.] :: I don't care.; I couldn't care less. [coll.]"
    assert bc.parse_ding_line(line) == [
        ("I don't care.", "Das ist mir egal."),
        ("I couldn't care less.", "Das ist mir wurscht."),
    ]


def test_several_sources_for_one_target():
    line = "Es regnet in Strömen. :: It's pouring.; It's raining cats and dogs."
    assert bc.parse_ding_line(line) == [
        ("It's pouring.", "Es regnet in Strömen."),
        ("It's raining cats and dogs.", "Es regnet in Strömen."),
    ]


def test_unequal_alternative_counts_keep_only_the_main_translation():
    assert bc.parse_ding_line("Alpha; Beta :: one; two; three") == [("one", "Alpha")]


def test_annotation_containing_semicolon_is_removed_before_splitting():
    # {dealt; dealt} must not create a third English alternative
    assert bc.parse_ding_line("Karten austeilen {vt} :: to deal {dealt; dealt} cards") == [
        ("to deal cards", "Karten austeilen")
    ]


def test_nested_brackets_keywords_abbreviations_and_cross_references():
    assert bc.strip_annotations("(Arbeit (an jdn.)) abgeben {vt}") == "abgeben"
    assert bc.strip_annotations("in forma pauperis /IFP/ ~legal aid") == "in forma pauperis"
    assert bc.strip_annotations("to pay down <> sth. <Anzahlung>") == "to pay down sth."
    assert bc.strip_annotations("Er kommt (bestimmt) .") == "Er kommt."


def test_non_entries_and_misaligned_entries_give_none():
    assert bc.parse_ding_line("# Version :: devel 2023-01-30") is None
    assert bc.parse_ding_line("") is None
    assert bc.parse_ding_line("no separator here") is None
    assert bc.parse_ding_line("a | b :: c") is None


# --- filtering, dedup, split ----------------------------------------------


@pytest.mark.parametrize(
    "english, german, reason",
    [
        ("to go home", "nach Hause gehen", None),
        ("house", "das Haus", "too_short"),
        ("one two three", " ".join(["wort"] * 61), "too_long"),
        ("a b c", "eins zwei drei vier fünf sechs sieben", "length_ratio"),
        ("in vino veritas", "In vino veritas", "untranslated"),
        ("to deal cards {x", "Karten austeilen jetzt", "leftover_markup"),
        ("... ... ...", "Karten austeilen jetzt", "no_words"),
    ],
)
def test_rejection_reasons(english, german, reason):
    assert bc.rejection_reason(english, german) == reason


def test_dedup_on_normalised_source_keeps_first():
    stats = bc.Counter()
    pairs = [("I am here.", "Ich bin hier."), ("i am here", "Ich bin da."), ("we are here now", "wir sind jetzt hier")]
    assert bc.collect_pairs(pairs, stats) == [pairs[0], pairs[2]]
    assert stats["rejected"] == {"duplicate_source": 1}


def _synthetic_pairs(count):
    rng = random.Random(0)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()
    pairs = []
    for index in range(count):
        english = f"sentence {index} " + " ".join(rng.choice(words) for _ in range(3))
        german = f"satz {index // 2} " + " ".join(rng.choice(words) for _ in range(3))  # shared targets
        pairs.append((english, german))
    return pairs


def test_split_is_deterministic_sized_and_disjoint():
    pairs = _synthetic_pairs(400)
    splits = bc.split_pairs(pairs, valid_size=30, test_size=40)
    shuffled = pairs[:]
    random.Random(1).shuffle(shuffled)
    assert bc.split_pairs(shuffled, valid_size=30, test_size=40) == splits
    assert 40 <= len(splits["test"]) <= 41 and 30 <= len(splits["valid"]) <= 31  # whole target groups
    assert sum(len(s) for s in splits.values()) == len(pairs)
    for side in (0, 1):
        keys = [{bc.normalized_key(p[side]) for p in splits[name]} for name in bc.SPLITS]
        assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])


# --- whole tool -----------------------------------------------------------


def _ding_file(write_lines, count=60):
    lines = ["# Version :: test", "Haus {n} :: house"]
    for index in range(count):
        lines.append(f"wir sehen {index} Häuser {{pl}} | Haus{index} :: we see {index} houses [Am.] | house{index}")
    return write_lines("de-en", lines)


def test_build_writes_splits_and_stats(tmp_path, write_lines):
    out = tmp_path / "raw"
    argv = ["--dict-file", _ding_file(write_lines), "--out-dir", str(out), "--valid-size", "5", "--test-size", "7", "--quiet"]
    assert bc.main(argv) == 0
    counts = {name: len((out / f"{name}.en").read_text().splitlines()) for name in bc.SPLITS}
    assert counts["test"] == 7 and counts["valid"] == 5 and counts["train"] == 60 - 12
    for name in bc.SPLITS:
        assert counts[name] == len((out / f"{name}.de").read_text().splitlines())
    stats = json.loads((out / "stats.json").read_text())
    assert stats["kept_pairs"] == 60 and stats["source_version"] == "test"
    assert stats["rejected"]["too_short"] == 61  # "house" and the 60 "houseN"
    assert "train: 48 pairs" in (out / "stats.txt").read_text()


def test_empty_and_unreadable_corpus_give_one_line_errors(tmp_path, write_lines, capsys):
    empty = write_lines("empty", ["# only a comment"])
    assert bc.main(["--dict-file", empty, "--out-dir", str(tmp_path / "o"), "--quiet"]) == 2
    assert "no usable sentence pairs" in capsys.readouterr().err
    assert bc.main(["--dict-file", str(tmp_path), "--out-dir", str(tmp_path / "o"), "--quiet"]) == 2
    assert "cannot read dictionary" in capsys.readouterr().err
    assert bc.main(["--dict-file", str(tmp_path / "missing"), "--out-dir", str(tmp_path / "o"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_too_small_corpus_for_requested_splits(tmp_path, write_lines, capsys):
    argv = ["--dict-file", _ding_file(write_lines, 10), "--out-dir", str(tmp_path / "o"), "--quiet"]
    assert bc.main(argv) == 2
    assert "not enough for --valid-size" in capsys.readouterr().err


# --- gettext fallback -----------------------------------------------------


def _write_mo(path, entries):
    """A minimal little-endian GNU .mo file (no hash table)."""
    entries = sorted(entries)
    ids = [k.encode() for k, _ in entries]
    strs = [v.encode() for _, v in entries]
    header = 7 * 4
    table_o, table_t = header, header + 8 * len(entries)
    offset = table_t + 8 * len(entries)
    blob, o_table, t_table = b"", b"", b""
    for table, items in (("o", ids), ("t", strs)):
        for item in items:
            entry = struct.pack("<2I", len(item), offset + len(blob))
            blob += item + b"\0"
            if table == "o":
                o_table += entry
            else:
                t_table += entry
    data = struct.pack("<7I", 0x950412DE, 0, len(entries), table_o, table_t, 0, 0) + o_table + t_table + blob
    path.write_bytes(data)


def test_mo_catalog_parsing_and_cleaning(tmp_path):
    mo = tmp_path / "x.mo"
    _write_mo(
        mo,
        [
            ("", "Content-Type: text/plain; charset=UTF-8\n"),
            ("_Open the file now", "Datei jetzt ö_ffnen"),
            ("menu\x04Save all files", "Alle Dateien speichern"),
            ("%d files copied", "%d Dateien kopiert"),
            ("one file\x00%d files", "eine Datei\x00%d Dateien"),
        ],
    )
    catalog = dict(bc.read_mo_catalog(str(mo)))
    assert catalog["Save all files"] == "Alle Dateien speichern"
    assert catalog["one file"] == "eine Datei"
    assert list(bc.gettext_pairs([str(mo)])) == [
        ("Open the file now", "Datei jetzt öffnen"),
        ("Save all files", "Alle Dateien speichern"),
        ("one file", "eine Datei"),
    ]


def test_not_a_mo_file(tmp_path):
    bad = tmp_path / "bad.mo"
    bad.write_bytes(b"\0" * 40)
    with pytest.raises(bc.CorpusError, match="bad magic"):
        bc.read_mo_catalog(str(bad))


def test_missing_package_without_root_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(bc, "DING_PATH", str(tmp_path / "de-en"))
    monkeypatch.setattr(bc.os, "geteuid", lambda: 1000)
    with pytest.raises(bc.CorpusError, match=r"sudo apt-get install -y trans-de-en"):
        bc.ensure_ding_dictionary(str(tmp_path / "de-en"))
