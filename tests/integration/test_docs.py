"""The settings reference in docs/settings.md is the table the program
validates with (D2): `tegami config doc` must print exactly what the doc holds
between its markers, and every key must appear in `config show`."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_settings_doc_matches_program(tegami_new):
    doc = (ROOT / "docs" / "settings.md").read_text()
    m = re.search(r"<!-- BEGIN config doc -->\n(.*?)<!-- END config doc -->", doc, re.S)
    assert m, "docs/settings.md lacks the generated table markers"
    out = tegami_new.cli("config", "doc").stdout
    assert m.group(1) == out, "docs/settings.md is stale: regenerate with `tegami config doc`"


def test_every_documented_key_is_shown(tegami_new):
    out = tegami_new.cli("config", "doc").stdout
    keys = re.findall(r"^\| `([a-z0-9_.]+)` \|", out, re.M)
    assert len(keys) >= 10
    shown = tegami_new.cli("config", "show").stdout
    for k in keys:
        assert re.search(r"^%s = " % re.escape(k), shown, re.M), k
