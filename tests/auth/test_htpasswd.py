"""HtpasswdFile / HtpasswdAuth: every hash form htpasswd writes, reloads, clear logs."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.htpasswd import HtpasswdAuth, HtpasswdFile, hash_form
from docker_registry_wsgi.errors import Unauthorized

from .conftest import bcrypt_line, basic, make_request

# (password, salt, expected) from Apache's `htpasswd -nbm user PASSWORD` (apache2-utils 2.4)
# and `openssl passwd -apr1 -salt abcdefgh secret` / `openssl passwd -1 -salt saltsalt secret`.
APR1_VECTORS = [
    ("secret", "NqjrywxA", "$apr1$NqjrywxA$MyXHLvtewkFHZK3TH4yZu."),
    ("pässwörd", "xCDZwrSq", "$apr1$xCDZwrSq$gkseYjGd8aaEAajr48O9D."),
    ("a", "jD.PHw59", "$apr1$jD.PHw59$Gh1L9ZlYFThz3FmbQhOp5."),
    (
        "this is a rather long password with 40+ chars!!",
        "r.8a4QZk",
        "$apr1$r.8a4QZk$VmiFelHS82ALGwElJA9O20",
    ),
    ("", "mSMUdhCI", "$apr1$mSMUdhCI$Is6SokyY0Mz6tXCYMyUq30"),
    ("secret", "abcdefgh", "$apr1$abcdefgh$h9FWgUz3n9YxylKLlR5SQ/"),
]


def _verifies(tmp_path: Path, hashed: str, password: str) -> bool:
    path = tmp_path / "htpasswd"
    path.write_text(f"user:{hashed}\n", encoding="utf-8")
    return HtpasswdFile(path).verify("user", password) == "user"


@pytest.mark.parametrize("password,salt,expected", APR1_VECTORS)
def test_apr1_known_answers(tmp_path: Path, password: str, salt: str, expected: str) -> None:
    assert _verifies(tmp_path, expected, password)
    assert not _verifies(tmp_path, expected, password + "x")


def test_md5_crypt_dollar_one_known_answer(tmp_path: Path) -> None:
    assert _verifies(tmp_path, "$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "secret")
    assert not _verifies(tmp_path, "$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "Secret")


def test_malformed_apr1_entry_is_refused_not_raised(tmp_path: Path) -> None:
    assert not _verifies(tmp_path, "$apr1$abc$not-a-real-hash", "secret")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed")
@settings(max_examples=15, deadline=None)
@given(
    password=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=40),
    salt=st.text("./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8),
)
def test_apr1_from_openssl_verifies(tmp_path_factory: pytest.TempPathFactory, password: str, salt: str) -> None:
    """Hashes made by OpenSSL's independent apr1 implementation verify (password on stdin)."""
    out = subprocess.run(
        ["openssl", "passwd", "-apr1", "-salt", salt, "-stdin"],
        input=password + "\n", capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert _verifies(tmp_path_factory.mktemp("apr1"), out, password)


@pytest.mark.parametrize(
    "hashed,form",
    [
        ("$2y$05$Nu9pivtdVFWVkt397iJ42.e6Tn4P6k7JJ1ku3uPmmFBmrSjWGZK8i", "bcrypt"),
        ("$2b$05$Nu9pivtdVFWVkt397iJ42.e6Tn4P6k7JJ1ku3uPmmFBmrSjWGZK8i", "bcrypt"),
        ("$apr1$NqjrywxA$MyXHLvtewkFHZK3TH4yZu.", "apr1"),
        ("$1$saltsalt$9xy1btjgzLYfb7hivXtC//", "md5-crypt"),
        ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", "sha1"),
        ("UJir1YqgnTkVY", "crypt-des"),
        ("$5$zk/PnoBHXNC2696l$z13F/jfJAMSab3vpZkM1VUFK146CoarrQ03jBAsXP2/", "sha256-crypt"),
        ("$6$abc$def", "sha512-crypt"),
        ("secret", "plain-or-unknown"),
    ],
)
def test_hash_form(hashed: str, form: str) -> None:
    assert hash_form(hashed) == form


def test_verify_every_supported_form(htpasswd_path: Path) -> None:
    users = HtpasswdFile(htpasswd_path)
    assert users.verify("alice", "wonderland") == "alice"  # bcrypt $2y$ as htpasswd -B writes
    assert users.verify("bob", "secret") == "bob"  # apr1
    assert users.verify("carol", "secret") == "carol"  # {SHA}
    assert users.verify("alice", "secret") is None
    assert users.verify("bob", "Secret") is None
    assert users.verify("carol", "secret ") is None
    assert users.verify("nobody", "secret") is None
    assert sorted(users.users()) == ["alice", "bob", "carol", "dave", "erin", "robot"]
    assert "alice" in users and "nobody" not in users and 42 not in users


def test_verify_md5_crypt_line(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text("frank:$1$saltsalt$9xy1btjgzLYfb7hivXtC//\n")
    assert HtpasswdFile(path).verify("frank", "secret") == "frank"


@pytest.mark.skipif(shutil.which("htpasswd") is None, reason="htpasswd (apache2-utils) not installed")
@pytest.mark.parametrize("flag", ["-B", "-m", "-s"])
def test_lines_written_by_apache_htpasswd(tmp_path: Path, flag: str) -> None:
    path = tmp_path / "h"
    subprocess.run(["htpasswd", "-cb", flag, str(path), "gina", "p4ss wörd"], check=True,
                   capture_output=True)
    users = HtpasswdFile(path)
    assert users.verify("gina", "p4ss wörd") == "gina"
    assert users.verify("gina", "p4ss word") is None


@pytest.mark.parametrize("user,form", [("dave", "crypt-des"), ("erin", "sha512-crypt")])
def test_unsupported_forms_are_refused_and_named_in_the_log(
    htpasswd_path: Path, caplog: pytest.LogCaptureFixture, user: str, form: str
) -> None:
    with caplog.at_level(logging.WARNING, "docker_registry_wsgi.auth.htpasswd"):
        users = HtpasswdFile(htpasswd_path)
    load_messages = [r.getMessage() for r in caplog.records]
    assert any(user in m and form in m and "htpasswd -B" in m for m in load_messages)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "docker_registry_wsgi.auth.htpasswd"):
        assert users.verify(user, "secret") is None
    assert any(user in r.getMessage() and form in r.getMessage() for r in caplog.records)


def test_malformed_lines_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h"
    path.write_bytes(b"no-colon-here\n:nouser\nempty:\n\xff\xfe:bad\n" + bcrypt_line("ok", "pw").encode() + b"\n")
    with caplog.at_level(logging.WARNING):
        users = HtpasswdFile(path)
    assert users.users() == ["ok"]
    assert users.verify("ok", "pw") == "ok"
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "line 1" in messages and "line 2" in messages and "line 3" in messages
    assert "line 4 is not UTF-8" in messages


def test_reloads_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text(bcrypt_line("alice", "one") + "\n")
    users = HtpasswdFile(path)
    assert users.verify("alice", "one") == "alice"
    path.write_text(bcrypt_line("alice", "two") + "\n" + bcrypt_line("bob", "three") + "\n")
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert users.verify("alice", "one") is None  # also proves the success cache was dropped
    assert users.verify("alice", "two") == "alice"
    assert users.verify("bob", "three") == "bob"


def test_replaced_file_is_reloaded_even_with_same_size_and_mtime(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text(bcrypt_line("alice", "one") + "\n")
    users = HtpasswdFile(path)
    assert users.verify("alice", "one") == "alice"
    stat = path.stat()
    replacement = tmp_path / "h.new"
    replacement.write_text(bcrypt_line("alice", "two") + "\n")  # same length
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(replacement, path)  # what `htpasswd` does: a new inode
    assert users.verify("alice", "two") == "alice"


def test_missing_file_keeps_last_users_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "h"
    path.write_text(bcrypt_line("alice", "one") + "\n")
    users = HtpasswdFile(path)
    path.unlink()
    with caplog.at_level(logging.ERROR):
        assert users.verify("alice", "one") == "alice"
        assert users.verify("alice", "one") == "alice"
    assert len([r for r in caplog.records if "cannot be read" in r.getMessage()]) == 1


def test_never_existing_file_means_no_users(tmp_path: Path) -> None:
    assert HtpasswdFile(tmp_path / "absent").verify("alice", "x") is None


def test_bcrypt_uses_the_first_72_bytes_like_htpasswd(tmp_path: Path) -> None:
    long = "x" * 80
    path = tmp_path / "h"
    path.write_text(bcrypt_line("alice", long[:72]) + "\n")
    assert HtpasswdFile(path).verify("alice", long) == "alice"


def test_htpasswd_auth_challenges_and_authenticates(htpasswd_path: Path) -> None:
    auth = HtpasswdAuth(htpasswd_path, realm="my registry")
    needed = [Access.repository("a/b", "pull")]
    assert auth.authorize(make_request(basic("alice", "wonderland")), needed) == "alice"
    for header in (None, basic("alice", "nope"), basic("zed", "secret"), "Basic !!!", b"Basic \xff"):
        with pytest.raises(Unauthorized) as info:
            auth.authorize(make_request(header), needed)
        assert info.value.headers["WWW-Authenticate"] == 'Basic realm="my registry"'
