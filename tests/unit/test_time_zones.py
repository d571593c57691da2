from yunying.time_zones import place_name, same_zone_names


def test_an_alias_and_its_place_share_their_names() -> None:
    assert place_name("PRC") == place_name("Asia/Chongqing") == "Asia/Shanghai"
    assert {"PRC", "Asia/Shanghai"} <= set(same_zone_names("PRC"))
    assert same_zone_names("Asia/Katmandu") == ("Asia/Kathmandu", "Asia/Katmandu")


def test_a_place_that_shares_another_places_rules_stays_itself() -> None:
    assert same_zone_names("Europe/Oslo") == ("Europe/Oslo",)
    assert "Europe/Oslo" not in same_zone_names("Europe/Berlin")
