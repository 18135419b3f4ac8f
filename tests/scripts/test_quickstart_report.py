"""quickstart_report.degeneracy: the signs of degenerate NAT output that the quickstart table shows."""
import pytest

import quickstart_report as qr


def test_length_ratio_and_punctuation_only_share():
    hyps = ["ein Haus .", ".", "", ". , ...", "3 ."]  # 2 real (a digit counts), 3 hollow
    result = qr.degeneracy(hyps, {"hyp_len": 9, "ref_len": 6})
    assert result["length_ratio"] == pytest.approx(1.5)
    assert result["punct_only_pct"] == pytest.approx(60.0)
    assert qr.degeneracy([], {})["length_ratio"] is None and qr.degeneracy([], {})["punct_only_pct"] is None
