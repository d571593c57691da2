from yunying.reports.anomaly import band_for, judge


def test_a_spike_is_flagged_and_a_normal_value_is_not() -> None:
    mondays = [1000, 1040, 980, 1010, 995, 1020]
    assert judge("dau", 1015, mondays, False).status == "normal"
    assert judge("dau", 1600, mondays, False).status == "new"
    assert judge("dau", 1600, mondays, True).status == "continuing"


def test_no_flag_without_enough_history() -> None:
    assert judge("dau", 5000, [1000, 1000, 1000], False).status == "not enough history"


def test_a_flat_history_still_has_a_band() -> None:
    band = band_for([100, 100, 100, 100])
    assert band is not None and band.low == 95 and band.high == 105
