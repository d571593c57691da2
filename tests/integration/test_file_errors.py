"""Errors a new user meets in their own files, through the `yunying` command: a file's name
and its `name` field, one bad segment file among good ones, a misspelt source key."""

from pathlib import Path

import pytest

from cli.main import main

SHIPPED = Path(__file__).resolve().parents[2] / "deployments"


def test_a_campaign_named_unlike_its_file_says_what_name_is_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (SHIPPED / "campaigns" / "winback.toml").read_text()
    (tmp_path / "c.toml").write_text(text.replace('name = "winback"', 'name = "spring-back"'))
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("YUNYING_CAMPAIGN_DIR", str(tmp_path))
    assert main(["preview", "c", "--user", "u1"]) == 2
    err = capsys.readouterr().err
    assert "field 'name' is 'spring-back'; it must match the file name: 'c'" in err


def _segments(folder: Path) -> None:
    folder.mkdir()
    (folder / "good.toml").write_text(
        'name = "good"\ndescription = "English"\nwhere = { locale = ["en"] }\n'
    )
    (folder / "bad.toml").write_text('name = "bad"\nwhere = { tier = ["gold"] }\n')
    (folder / "other.toml").write_text('name = "elsewhere"\nwhere = { locale = ["en"] }\n')


def test_segments_list_shows_the_good_files_and_names_each_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _segments(tmp_path / "segments")
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(tmp_path / "segments"))
    assert main(["segments", "list"]) == 2  # scripts notice
    out, err = capsys.readouterr()
    assert out.split() == ["good", "English"]
    assert "Traceback" not in err
    assert "bad.toml: field 'where.tier'" in err
    assert "other.toml: field 'name' is 'elsewhere'; it must match the file name: 'other'" in err


def test_segments_sizes_counts_the_good_files_and_names_each_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _segments(tmp_path / "segments")
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(tmp_path / "segments"))
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["segments", "sizes", "--date", "2026-11-01"]) == 2  # scripts notice
    out, err = capsys.readouterr()
    assert out.split() == ["good", "0"]
    assert "Traceback" not in err
    assert "bad.toml: field 'where.tier'" in err
    assert "other.toml: field 'name' is 'elsewhere'; it must match the file name: 'other'" in err


def test_segments_show_of_a_good_file_ignores_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _segments(tmp_path / "segments")
    monkeypatch.setenv("YUNYING_HOME", str(tmp_path / "var"))
    monkeypatch.setenv("YUNYING_SEGMENT_DIR", str(tmp_path / "segments"))
    assert main(["db", "upgrade"]) == 0
    assert main(["segments", "show", "good", "--date", "2026-11-01"]) == 0
    assert "good" in capsys.readouterr().out


def test_a_misspelt_source_key_suggests_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "yunying.toml"
    config.write_text(
        '[[sources]]\nkind = "file"\nname = "u"\nentity = "users"\npath = "u.jsonl"\n'
        '[[sources]]\nkind = "sql"\nname = "o"\nentity = "orders"\nurl = "sqlite:///x.db"\n'
        'tabel = "orders"\n'
    )
    monkeypatch.setenv("YUNYING_CONFIG", str(config))
    assert main(["sending", "status"]) == 2
    err = capsys.readouterr().err
    assert "unknown setting 'sources.1.sql.tabel' (did you mean 'table'?)" in err
