"""Named bearer tokens: each client its own, each long enough to be a secret."""

import stat

import pytest

from tradeops_assets.core import tokens
from tradeops_assets.core.errors import ConfigError

A, B = "a" * 40, "b" * 43


def test_each_token_names_its_client_and_nothing_else_passes():
    found = tokens.TokenSet.of({"desk-1": A, "desk.2": f"  {B}\n"}, "test")
    assert found.client(f"Bearer {A}".encode()) == "desk-1"
    assert found.client(f"Bearer {B}".encode()) == "desk.2"  # read stripped
    for wrong in (A.encode(), f"Bearer {A[:-1]}".encode(), f"bearer {A}".encode(), b"", b"Bearer "):
        assert found.client(wrong) is None
    assert len(found) == 2


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"desk": "   "}, "token of 'desk' is empty"),
        ({"desk": "x" * 31}, "token of 'desk' is 31 bytes"),
        ({"desk": "x" * 20 + " " + "y" * 20}, "holds whitespace"),
        ({"desk one": A}, "client name 'desk one' must be"),
        ({"": A}, "client name '' must be"),
        ({"d" * 65: A}, "must be 1-64"),
        ({"desk": A, "other": A}, "'other' and 'desk' share a token"),
    ],
)
def test_a_bad_token_set_is_refused_by_name(given, message):
    with pytest.raises(ConfigError, match=message):
        tokens.TokenSet.of(given, "test")


def test_the_tokens_file_is_written_owner_only_and_read_back(tmp_path):
    path = tmp_path / "keys" / "api_tokens.json"
    tokens.write_tokens(path, {"desk": A, "risk": B})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert tokens.read_tokens(path) == {"desk": A, "risk": B}
    with pytest.raises(ConfigError, match="share a token"):
        tokens.write_tokens(path, {"desk": A, "risk": A})
    assert tokens.read_tokens(path) == {"desk": A, "risk": B}  # a refused write changes nothing
    assert len(tokens.new_token()) >= tokens.MIN_TOKEN_BYTES


@pytest.mark.parametrize(
    ("content", "message"), [("[1, 2]", "must be a JSON object"), ("{", "cannot be read")]
)
def test_a_malformed_tokens_file_is_named(tmp_path, content, message):
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        tokens.read_tokens(path)
    with pytest.raises(ConfigError, match="does not exist"):
        tokens.read_tokens(tmp_path / "absent.json")
