"""A key server behind HTTP basic authentication is given as ``https://user:password@host``: the password
was printed in every warning and error naming the server, and keyed the node's memory of it (pin, batches
done, revision token) in the store.  Now it is shown as ``***`` everywhere, goes only into the requests'
Authorization header, and the state is the server's without it (same server, same state)."""

from __future__ import annotations

import base64
import json
import sqlite3
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from server_helpers import NOW, URL, Server, make_nodes

from bluezone.cli import cli
from bluezone.client.check import check_with_server
from bluezone.client.keyserver import KeyServerClient, base_url_of, shown_url
from bluezone.client.state import ServerState
from bluezone.clock import VirtualClock
from bluezone.errors import InputError, KeyServerError
from bluezone.proximity.store import SightingStore

SECRET = "s3cret-Pa55"
userinfo_text = st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="/?#\\"), min_size=1, max_size=16)


@settings(max_examples=300, deadline=None)
@given(user=userinfo_text, password=userinfo_text, path=st.sampled_from(["", "/", "/v1", "/keys/v1/exports/index.txt"]))
def test_credentials_are_never_shown_and_never_part_of_the_servers_name(user: str, password: str, path: str) -> None:
    url = f"https://{user}:{password}@keys.example.org:8443{path}"
    assert shown_url(url) == f"https://***@keys.example.org:8443{path}"
    assert base_url_of(url) == base_url_of(f"https://keys.example.org:8443{path}")


def test_the_password_goes_in_the_authorization_header_only() -> None:
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(500, text="boom")

    client = KeyServerClient(f"https://alice:{SECRET}@keys.test/v1", transport=httpx.MockTransport(handle), retries=0)
    with pytest.raises(KeyServerError) as error:
        client.signing_key()
    assert SECRET not in str(error.value) and "https://keys.test/v1/signing-key: 500" in str(error.value)
    assert client.base_url == "https://keys.test"
    assert seen[0].headers["authorization"] == "Basic " + base64.b64encode(f"alice:{SECRET}".encode()).decode()
    assert seen[0].url.userinfo == b"" and SECRET not in str(seen[0].url)


@pytest.mark.parametrize("url", [f"https://alice:{SECRET}@keys example.org", f"https://alice:{SECRET}@keys.test:99999",
                                 f"https://alice:{SECRET}@keys.test/#top"])
def test_a_refused_url_is_shown_without_its_password(url: str) -> None:
    with pytest.raises(InputError) as error:
        KeyServerClient(url)
    assert SECRET not in str(error.value) and "***@" in str(error.value)


def test_a_check_with_credentials_keeps_the_servers_state_without_them(tmp_path: Path) -> None:
    """The pin a check through the password-protected URL made is the server's without credentials; the
    password is nowhere in the store."""
    server = Server(tmp_path / "server")
    _, nodes = make_nodes(tmp_path / "nodes")
    server.export()
    with_password = URL.replace("http://", f"https://alice:{SECRET}@")  # (over http:// refused: not loopback)
    check_with_server(with_password, nodes["b"], http=server.http, now=server.clock.now())
    with SightingStore.open(nodes["b"], create=False) as store:
        assert ServerState(store).pinned(URL.replace("http://", "https://")) is not None
    for path in nodes["b"].parent.glob(nodes["b"].name + "*"):
        assert SECRET.encode() not in path.read_bytes()


def test_upload_and_check_print_no_password(tmp_path: Path) -> None:
    _, nodes = make_nodes(tmp_path, now=NOW)
    url = f"http://alice:{SECRET}@127.0.0.1:9"
    asked = CliRunner().invoke(cli, ["upload", "--server", url, "--code", "12345678", "--db", str(nodes["a"])],
                               obj={"clock": VirtualClock(NOW)}, input="n\nn\n")
    assert asked.exit_code == 1 and "to http://***@127.0.0.1:9:" in asked.stderr and SECRET not in asked.output
    checked = CliRunner().invoke(cli, ["check", "--server", url, "--db", str(nodes["b"])], obj={"clock": VirtualClock(time.time())})
    assert checked.exit_code != 0 and "http://127.0.0.1:9" in checked.stderr and SECRET not in checked.output


@settings(max_examples=300, deadline=None)
@given(
    scheme=st.sampled_from(["https://", "http://", "HTTPS://", "ftp://", ""]),
    user=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=8),
    middle=st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    host=st.sampled_from(["keys.test", "[::1]:8443", "keys.test:99999", "", "keys.test/v1/#top"]),
)
def test_no_refusal_shows_any_part_of_a_password(scheme: str, user: str, middle: str, host: str) -> None:
    """A password holding '#', '?' or '/' (a parser ends the authority there) or given without a scheme was
    printed whole in the URL's refusal: the credentials are hidden up to the URL's last '@' in every refusal."""
    url = f"{scheme}{user}:PWSTART{middle}PWEND@{host}"
    try:
        KeyServerClient(url).close()
    except InputError as error:
        assert "PWSTART" not in str(error) and "PWEND" not in str(error) and "***@" in str(error)


@pytest.mark.parametrize("url", [f"https://alice:{SECRET}#1@keys.test", f"https://alice:{SECRET}?@keys.test",
                                 f"https://alice:{SECRET}/x@keys.test", f"alice:{SECRET}@keys.test"])
def test_upload_refuses_a_url_with_an_odd_password_in_one_line_without_it(tmp_path: Path, url: str) -> None:
    result = CliRunner().invoke(cli, ["upload", "--server", url, "--code", "12345678", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and SECRET not in result.output and "***@keys.test" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_after_an_upgrade_a_check_keeps_the_pin_and_an_upload_its_revision_token(
    schema11_credentials_store: Path, tmp_path: Path
) -> None:
    """A store an earlier version wrote through ``https://alice:...@keys.test`` (schema 11, its state under that
    name): a server there signing with another key was pinned on first use, and the F0's next upload went
    without its revision token (a new upload, not a revision).  Migrated (schema 12), the pin holds and the
    token goes."""
    from bluezone.client.uploading import upload_own_keys
    from bluezone.crypto.intervals import rolling_start
    from bluezone.crypto.keys import DailyKey
    from bluezone.errors import ServerKeyChangedError

    # the fixture's server was given as http://alice:...@keys.test, now refused (not this machine): the same
    # store had the user given https://
    with sqlite3.connect(schema11_credentials_store) as conn:
        for table in ("keyserver_pins", "keyserver_batches", "keyserver_revision_tokens", "keyserver_rejected"):
            conn.execute(f"UPDATE {table} SET server = replace(server, 'http://', 'https://')")
    conn.close()
    impostor = Server(tmp_path / "server")  # the same address, another signing key
    impostor.export()
    with pytest.raises(ServerKeyChangedError, match="now announces a different signing key"):
        check_with_server(URL.replace("http://", f"https://alice:{SECRET}@"), schema11_credentials_store,
                          http=impostor.http, now=NOW)
    sent: list[dict] = []

    def publish(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"insertedExposures": 1, "revisionToken": "next"})

    with SightingStore.open(schema11_credentials_store, create=False, purge_now=NOW) as store:
        store.save_daily_key(DailyKey(b"k" * 16, rolling_start(NOW) - 144), created_at=NOW)
        with KeyServerClient("https://bob:hunter2%40x@keys.example.org/ministry/v1", transport=httpx.MockTransport(publish)) as client:
            upload_own_keys(store, client, "12345678", NOW, include_today=False)
    assert sent[0]["revisionToken"] == "ministry-token"


@pytest.mark.parametrize("host", ["keys.example.org", "192.0.2.7", "[2001:db8::1]:8080", "localhost.example.org"])
def test_a_password_over_plain_http_to_another_host_is_refused_in_one_line(tmp_path: Path, host: str) -> None:
    """Basic authentication sends the password in every request: over http:// to another host anyone on the
    way reads it (it was sent on every check, said nowhere).  Refused before anything is read or sent, exit 2;
    https:// and http:// to this machine (an SSH tunnel, a local proxy) still work."""
    with pytest.raises(InputError, match="would be sent in clear") as error:
        KeyServerClient(f"http://alice:{SECRET}@{host}").close()
    assert SECRET not in str(error.value) and "https://" in str(error.value)
    _, nodes = make_nodes(tmp_path, now=NOW)
    done = CliRunner().invoke(cli, ["check", "--server", f"http://alice:{SECRET}@{host}", "--db", str(nodes["b"])],
                              obj={"clock": VirtualClock(NOW)})
    assert done.exit_code == 2 and len(done.stderr.strip().splitlines()) == 1 and SECRET not in done.output
    assert "would be sent in clear" in done.stderr


@pytest.mark.parametrize("url", [f"http://alice:{SECRET}@localhost:8080", f"http://alice:{SECRET}@127.0.0.2",
                                 f"http://alice:{SECRET}@[::1]:8080", f"https://alice:{SECRET}@keys.example.org",
                                 "http://keys.example.org"])
def test_a_password_over_https_or_to_this_machine_is_taken(url: str) -> None:
    KeyServerClient(url).close()


@settings(max_examples=200, deadline=None)
@given(password=userinfo_text, host=st.sampled_from(["0177.0.0.1", "999.1.1.1", "10.0.0.0400"]),
       scheme=st.sampled_from(["http://", "https://"]))
def test_a_bad_host_after_credentials_is_named_not_taken_for_their_encoding(password: str, scheme: str, host: str) -> None:
    """`http://u:pw@0177.0.0.1/` was refused with advice on encoding a password, not a word of its host."""
    with pytest.raises(InputError) as error:
        KeyServerClient(f"{scheme}alice:{password}@{host}/").close()
    assert str(error.value).endswith(f": Invalid IPv4 address: '{host}' (its host)")
    assert "%2F" not in str(error.value) and "***@" in str(error.value)


@pytest.mark.parametrize("password", ["pa/ss", "pa:ss:x/y"])
def test_credentials_that_need_encoding_are_still_told_so(password: str) -> None:
    with pytest.raises(InputError) as error:
        KeyServerClient(f"https://alice:{password}@keys.test/").close()
    assert "write '/' as %2F" in str(error.value) and password not in str(error.value)


@settings(max_examples=300, deadline=None)
@given(before=st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="?#"), max_size=6),
       after=st.text(st.characters(min_codepoint=33, max_codepoint=126, blacklist_characters="?#"), max_size=6))
def test_a_password_holding_at_and_slash_is_refused_or_taken_whole(before: str, after: str) -> None:
    """'https://alice:p@ss/word@keys.example.org' (a password 'p@ss/word' not encoded) was taken for the host 'ss':
    'alice:p' went there, and 'word@keys.example.org' was shown and kept as the server's name. Now a URL is refused
    without any part of its password, or its server is keys.test."""
    url = f"https://alice:PWSTART{before}@x/{after}PWEND@keys.test"
    try:
        client = KeyServerClient(url)
    except InputError as error:
        assert "PWSTART" not in str(error) and "PWEND" not in str(error) and "***@keys.test" in str(error)
    else:
        client.close()
        assert client.base_url == "https://keys.test"


def test_an_at_sign_after_the_host_is_refused_in_one_line(tmp_path: Path) -> None:
    url = "https://alice:p@ss/TailOfIt@keys.example.org"
    result = CliRunner().invoke(cli, ["upload", "--server", url, "--code", "12345678", "--db", str(tmp_path / "none.db")])
    assert result.exit_code == 2 and "TailOfIt" not in result.output and "***@keys.example.org" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "an '@' after the host; in a user name or password write '/' as %2F" in result.stderr
