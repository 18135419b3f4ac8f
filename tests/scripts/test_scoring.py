"""Tests for scripts/evaluation/score.py."""
import json
import math

import pytest
import sacrebleu
from sacremoses import MosesDetokenizer

import score


def test_compound_splitting_matches_the_perl_convention():
    assert score.split_compounds("das Drei-Stufen-Modell") == "das Drei ##AT##-##AT## Stufen ##AT##-##AT## Modell"
    # "a-b-c": the perl regex consumes "b" in the first match, so "-c" stays
    assert score.split_compounds("a-b-c") == "a ##AT##-##AT## b-c"
    assert score.split_compounds("Drei @-@ Stufen") == "Drei @ ##AT##-##AT## @ Stufen"
    assert score.split_compounds("- x -") == "- x -"


def test_tokenized_bleu_hand_checked():
    hyp = ["das Drei-Stufen-Modell ist gut"]
    ref = ["das Drei-Stufen-Modell ist sehr gut"]
    # After splitting, with A = ##AT##-##AT##:
    #   hyp: das Drei A Stufen A Modell ist gut        (8 tokens)
    #   ref: das Drei A Stufen A Modell ist sehr gut   (9 tokens)
    # 1-grams 8/8; 2-grams 6/7 ("ist gut" missing); 3-grams 5/6 ("Modell ist gut");
    # 4-grams 4/5 ("A Modell ist gut").  Geometric mean = (1*6/7*5/6*4/5)^(1/4) = (4/7)^(1/4)
    # = 0.86944; brevity penalty exp(1 - 9/8) = 0.88250; BLEU = 0.76728 -> 76.73.
    expected = 100 * (4 / 7) ** 0.25 * math.exp(1 - 9 / 8)
    result = score.tokenized_bleu(hyp, ref)
    assert result.score == pytest.approx(expected, abs=1e-9)
    assert round(result.score, 2) == 76.73
    assert (result.sys_len, result.ref_len) == (8, 9)
    # Without the split the 4-gram precision is 0/1, so plain BLEU is 0:
    # compound splitting is what makes the two conventions differ.
    assert sacrebleu.corpus_bleu(hyp, [ref], tokenize="none", smooth_method="none").score == 0.0


HYPS = ["Das ist ein kleines Haus.", "Er hat es nicht gewusst, sagte sie.", "Wir sehen uns morgen!"]
REFS = ["Das ist ein kleines Haus.", "Sie sagte, er habe es nicht gewusst.", "Bis morgen!"]


def test_sacrebleu_and_chrf_equal_the_api_on_the_same_files(write_lines, capsys):
    hyp, ref = write_lines("hyp.txt", HYPS), write_lines("ref.txt", REFS)
    assert score.main(["--hyp", hyp, "--ref", ref, "--detokenized", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["sacrebleu"] == round(sacrebleu.corpus_bleu(HYPS, [REFS]).score, 2)
    assert result["chrf"] == round(sacrebleu.corpus_chrf(HYPS, [REFS]).score, 2)
    assert result["sacrebleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp")


def test_tokenized_input_is_detokenized_for_sacrebleu(write_lines, capsys):
    tok_hyps = ["Das ist ein Drei @-@ Stufen @-@ Pl@@ an .", "Er hat es nicht gewusst , sagte sie ."]
    tok_refs = ["Das ist der Drei @-@ Stufen @-@ Plan .", "Sie sagte , er habe es nicht gewusst ."]
    hyp, ref = write_lines("h", tok_hyps), write_lines("r", tok_refs)
    assert score.main(["--hyp", hyp, "--ref", ref, "--remove-bpe", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    detok = MosesDetokenizer(lang="de")
    plain_h = [detok.detokenize(score.remove_bpe(h).split()) for h in tok_hyps]
    plain_r = [detok.detokenize(r.split()) for r in tok_refs]
    assert plain_h[0] == "Das ist ein Drei-Stufen-Plan."
    assert result["sacrebleu"] == round(sacrebleu.corpus_bleu(plain_h, [plain_r]).score, 2)
    bpe_free = [score.remove_bpe(h) for h in tok_hyps]
    assert result["bleu_tok"] == round(score.tokenized_bleu(bpe_free, tok_refs).score, 2)


GENERATE_OUTPUT = """\
2026-01-01 12:00:00 | INFO | fairseq_cli.generate | loading model
S-1\tsecond source
T-1\tzweite Ref@@ erenz
H-1\t-0.5\tzweite Ref@@ erenz
D-1\t-0.5\tzweite Referenz
P-1\t-0.1 -0.2
S-0\tfirst source
T-0\terste Referenz hier
H-0\t-1.25\terste Referenz
D-0\t-1.25\terste Referenz
S-2\tthird
T-2\tdritte
H-2\t-3.0\t
D-2\t-3.0\t
Generate test with beam=4: BLEU4 = 1.00
"""


def test_generate_output_is_sorted_by_id_and_log_lines_ignored():
    ids, hyps, refs = score.parse_generate_lines(GENERATE_OUTPUT.splitlines())
    assert ids == [0, 1, 2]
    assert hyps == ["erste Referenz", "zweite Ref@@ erenz", ""]
    assert refs == ["erste Referenz hier", "zweite Ref@@ erenz", "dritte"]
    _, detok, _ = score.parse_generate_lines(GENERATE_OUTPUT.splitlines(), hyp_field="D")
    assert detok[1] == "zweite Referenz"


def test_generate_file_cli(write_lines, capsys):
    path = write_lines("gen.out", GENERATE_OUTPUT.splitlines())
    assert score.main([path, "--remove-bpe"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" =")[0] for line in lines] == ["BLEU (tokenized, compound-split)", "sacreBLEU", "chrF"]


def test_mismatched_line_counts_are_a_clear_error(write_lines, capsys):
    hyp, ref = write_lines("hyp", HYPS), write_lines("ref", REFS[:2])
    assert score.main(["--hyp", hyp, "--ref", ref]) == 2
    assert "different line counts: 3 vs 2" in capsys.readouterr().err
    with pytest.raises(score.ScoreError, match="different line counts"):
        score.score_corpus(HYPS, REFS[:1])


def test_generate_output_with_missing_references(write_lines):
    lines = ["H-0\t-1\ta", "T-0\ta", "H-1\t-1\tb"]
    with pytest.raises(score.ScoreError, match="different sentence ids"):
        score.parse_generate_lines(lines)
    with pytest.raises(score.ScoreError, match="no H- lines"):
        score.parse_generate_lines(["S-0\tx"])


def test_remove_bpe():
    assert score.remove_bpe("ver@@ stehen wir@@") == "verstehen wir"
