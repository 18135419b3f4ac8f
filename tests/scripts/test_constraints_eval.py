"""scripts/evaluation/constraints_eval.py: constraint phrases from references, satisfaction check."""
import json
import random

import constraints_eval as ce


def test_pick_phrases_are_disjoint_reference_spans_in_order():
    words = "a b c d e f g".split()
    for seed in range(20):
        phrases = ce.pick_phrases(words, 3, 2, random.Random(seed))
        assert 1 <= len(phrases) <= 3
        assert ce.contains_in_order(" ".join(words), phrases)
        assert all(1 <= len(p.split()) <= 2 for p in phrases)


def test_contains_in_order():
    assert ce.contains_in_order("x a b y c", ["a b", "c"])
    assert not ce.contains_in_order("x a b y c", ["c", "a b"])
    assert not ce.contains_in_order("a y b", ["a b"])
    assert ce.contains_in_order("anything", [])


def test_make_and_check(write_lines, tmp_path, capsys):
    src = write_lines("s.en", ["s1", "s2", "s3"])
    ref = write_lines("r.de", ["A B C", "D E", "F"])
    assert ce.main(["make", "--source", src, "--reference", ref, "--phrases", "1", "--max-words", "1"]) == 0
    made = capsys.readouterr().out.splitlines()
    assert [m.split("\t")[0] for m in made] == ["s1", "s2", "s3"] and all(len(m.split("\t")) == 2 for m in made)
    inp = write_lines("in.txt", made)
    # sentence 0 meets its phrase, 1 does not, 2 was infeasible (warned) and is not counted
    hyps = ["S-0\ts1", f"H-0\t-1.0\t{made[0].split(chr(9))[1]}", "S-1\ts2", "H-1\t-1.0\tnothing",
            "S-2\ts3", "H-2\t-1.0\tF"]
    out = write_lines("out.txt", hyps)
    log = write_lines("log.txt", ["WARNING nat_plugins: a sentence: the constraints (F) do not fit its graph; "
                                  "giving the unconstrained translation; source: s3"])
    assert ce.main(["check", "--input", inp, "--output", out, "--log", log, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"sentences": 3, "with_constraints": 3, "infeasible": 1, "feasible_met": 1,
                      "satisfaction_rate": 50.0, "missing_hypotheses": 0, "unmet_ids": [1]}
