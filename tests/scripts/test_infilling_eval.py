"""scripts/evaluation/infilling_eval.py: held-out span templates and their accuracy."""
import json
import random

import infilling_eval as ie


def test_hide_span_keeps_width_and_the_other_words():
    words = "a b c d e".split()
    for seed in range(20):
        template, start, width = ie.hide_span(words, 3, random.Random(seed))
        t = template.split()
        assert len(t) == 5 and 1 <= width <= 3
        assert t[start:start + width] == ["<blank>"] * width
        assert [w for i, w in enumerate(t) if not start <= i < start + width] == \
            [w for i, w in enumerate(words) if not start <= i < start + width]


def test_span_accuracy_by_hand():
    assert ie.span_accuracy("a <blank> <blank> d", "a b c d", "a b x d") == (2, 1, True, True)
    assert ie.span_accuracy("a <blank> d", "a b d", "z b d q") == (1, 1, False, False)


def test_make_and_check(write_lines, capsys):
    ref = write_lines("ref.de", ["A B C", "D E", "F G H I"])
    assert ie.main(["make", "--reference", ref, "--max-width", "1", "--seed", "0"]) == 0
    templates = capsys.readouterr().out.splitlines()
    assert all(t.split().count("<blank>") == 1 for t in templates)
    tpl = write_lines("t.txt", templates)
    # sentence 0 restores its span, 1 does not, 2 is missing from the output (not counted)
    refs = ["A B C", "D E"]
    hyps = [f"H-0\t-1\t{refs[0]}", "H-1\t-1\t" + " ".join("Z" if w == "<blank>" else w for w in templates[1].split())]
    out = write_lines("gen.out", hyps)
    assert ie.main(["check", "--templates", tpl, "--reference", ref, "--output", out, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result == {"sentences": 2, "hidden_tokens": 2, "token_accuracy": 50.0, "exact_spans": 50.0,
                      "fixed_tokens_kept": 100.0, "width_kept": 100.0}
