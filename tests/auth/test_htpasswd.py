"""HtpasswdFile / HtpasswdAuth: every hash form htpasswd writes, reloads, clear logs."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest
import webtest
from hypothesis import given, settings
from hypothesis import strategies as st

from docker_registry_wsgi import Registry
from docker_registry_wsgi.auth import htpasswd as htpasswd_module
from docker_registry_wsgi.auth.base import Access
from docker_registry_wsgi.auth.htpasswd import HtpasswdAuth, HtpasswdFile, hash_cost, hash_form
from docker_registry_wsgi.auth.policy import RulePolicy
from docker_registry_wsgi.errors import Unauthorized
from docker_registry_wsgi.storage import MemoryStorage

from tests.handlers import RegistryClient

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


# -- timing: unknown users cost what known ones do --------------------------------------------


def _bcrypt_at(cost: int, user: str, password: str = "pw", prefix: str = "$2y$") -> str:
    hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()
    return f"{user}:{prefix}{hashed[4:]}"


@pytest.mark.parametrize(
    "hashed,expected",
    [
        ("$2y$12$" + "a" * 53, ("bcrypt", 12)),
        ("$2b$05$Nu9pivtdVFWVkt397iJ42.e6Tn4P6k7JJ1ku3uPmmFBmrSjWGZK8i", ("bcrypt", 5)),
        ("$2a$31$" + "a" * 53, ("bcrypt", 31)),
        ("$2y$03$" + "a" * 53, None),  # below bcrypt's minimum cost
        ("$2y$12$short", None),
        ("$2x$05$" + "a" * 53, None),  # htpasswd never writes $2x$; it is refused
        ("$apr1$NqjrywxA$MyXHLvtewkFHZK3TH4yZu.", ("apr1", 0)),
        ("$1$saltsalt$9xy1btjgzLYfb7hivXtC//", ("md5-crypt", 0)),
        ("{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=", ("sha1", 0)),
        ("$6$abc$def", None),
        ("UJir1YqgnTkVY", None),
    ],
)
def test_hash_cost(hashed: str, expected: tuple[str, int] | None) -> None:
    assert hash_cost(hashed) == expected


def test_decoy_has_the_form_and_cost_of_most_lines(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text("\n".join([_bcrypt_at(7, "a"), _bcrypt_at(7, "b"), _bcrypt_at(4, "c"),
                               f"d:{APR1_VECTORS[0][2]}", "erin:$6$abc$def", ""]))
    users = HtpasswdFile(path)
    decoy = users.decoy_hash
    assert hash_form(decoy) == "bcrypt" and hash_cost(decoy) == ("bcrypt", 7)
    assert decoy not in path.read_text()


@pytest.mark.parametrize(
    "lines,setting",
    [
        ([f"a:{APR1_VECTORS[0][2]}", f"b:{APR1_VECTORS[1][2]}", "c:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="],
         ("apr1", 0)),
        (["a:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ="], ("sha1", 0)),
        (["a:$1$saltsalt$9xy1btjgzLYfb7hivXtC//"], ("md5-crypt", 0)),
        ([], ("bcrypt", 5)),  # no usable line: what htpasswd -B writes by default
        (["erin:$6$abc$def", "dave:UJir1YqgnTkVY"], ("bcrypt", 5)),
    ],
)
def test_decoy_of_other_forms(tmp_path: Path, lines: list[str], setting: tuple[str, int]) -> None:
    path = tmp_path / "h"
    path.write_text("\n".join(lines) + "\n")
    decoy = HtpasswdFile(path).decoy_hash
    assert hash_cost(decoy) == setting
    assert HtpasswdFile(path).decoy_hash != decoy  # a random password each time


def test_decoy_ties_go_to_the_more_expensive_setting(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text("\n".join([_bcrypt_at(4, "a"), _bcrypt_at(6, "b"), f"c:{APR1_VECTORS[0][2]}", ""]))
    assert hash_cost(HtpasswdFile(path).decoy_hash) == ("bcrypt", 6)


def test_decoy_follows_the_file_and_is_made_once_per_setting(tmp_path: Path) -> None:
    path = tmp_path / "h"
    path.write_text(_bcrypt_at(4, "a") + "\n")
    users = HtpasswdFile(path)
    first = users.decoy_hash
    _rewrite(path, _bcrypt_at(4, "a") + "\n" + _bcrypt_at(4, "b") + "\n")
    assert users.users() == ["a", "b"] and users.decoy_hash == first  # same setting: kept
    _rewrite(path, _bcrypt_at(6, "a") + "\n")
    assert hash_cost(users.decoy_hash) == ("bcrypt", 6)


def test_mixed_settings_are_named_in_the_log(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "h"
    path.write_text("\n".join([_bcrypt_at(5, "a"), _bcrypt_at(5, "b"), _bcrypt_at(4, "c"), ""]))
    with caplog.at_level(logging.WARNING, "docker_registry_wsgi.auth.htpasswd"):
        HtpasswdFile(path)
    [message] = [r.getMessage() for r in caplog.records]
    assert "1 of 3 users" in message and "bcrypt cost 5" in message and "htpasswd -B -C 5" in message


def test_unknown_and_unusable_users_are_checked_against_the_decoy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Which hash each refused login costs (the same work as a known user's wrong password)."""
    path = tmp_path / "h"
    alice = _bcrypt_at(5, "alice")
    path.write_text("\n".join([alice, _bcrypt_at(5, "bob"), "erin:$6$abc$def",
                               "xavier:$2x$05$" + "a" * 53, ""]))
    users = HtpasswdFile(path)
    checked: list[tuple[str, str]] = []
    real_check = htpasswd_module._check

    def spy(form: str, password: str, hashed: str) -> bool:
        checked.append((form, hashed))
        return real_check(form, password, hashed)

    monkeypatch.setattr(htpasswd_module, "_check", spy)
    for name in ("nobody", "erin", "xavier", "alice"):
        assert users.verify(name, "wrong") is None
    decoy = ("bcrypt", users.decoy_hash)
    assert checked == [decoy, decoy, decoy, ("bcrypt", alice.split(":", 1)[1])]


# -- races with reloads -----------------------------------------------------------------------


def _rewrite(path: Path, text: str) -> None:
    """Replace the file as an editor would, with a later mtime whatever the clock's resolution."""
    before = path.stat()
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))


def test_a_removed_user_does_not_come_back_from_a_check_under_way(tmp_path: Path) -> None:
    """Alice's check holds inside the password function while the file loses her."""
    path = tmp_path / "h"
    path.write_text(_bcrypt_at(4, "alice") + "\n" + _bcrypt_at(4, "bob") + "\n")
    users = HtpasswdFile(path)
    entered, release = threading.Event(), threading.Event()
    check_entry = users._checked.verify
    held: list[bool] = []

    def held_check(name: str, password: str) -> object:
        answer = check_entry(name, password)  # has read the file as it was
        if not held:
            held.append(True)
            entered.set()
            assert release.wait(30)
        return answer

    users._checked.verify = held_check
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(users.verify, "alice", "pw")
        assert entered.wait(30)
        _rewrite(path, _bcrypt_at(4, "bob") + "\n")
        assert users.verify("alice", "pw") is None  # reloads, forgets
        release.set()
        assert first.result(30) == "alice"  # that request came before the removal
    assert users.verify("alice", "pw") is None
    assert users.verify("bob", "pw") == "bob"


def test_password_hash_is_the_current_entry(tmp_path: Path) -> None:
    path = tmp_path / "h"
    line = _bcrypt_at(4, "alice")
    path.write_text(line + "\n")
    users = HtpasswdFile(path)
    assert users.password_hash("alice") == line.split(":", 1)[1]
    assert users.password_hash("bob") is None
    _rewrite(path, _bcrypt_at(4, "alice", "new") + "\n")
    assert users.password_hash("alice") not in (None, line.split(":", 1)[1])


# -- empty credentials are anonymous (skopeo and podman send ``Basic Og==``) ---------------------


def test_empty_basic_credentials_are_anonymous_over_wsgi(htpasswd_path: Path) -> None:
    """Pull where the rules allow anonymous pull; push and /v2/ get the Basic challenge."""
    policy = RulePolicy.from_mapping({
        "anonymous_pull": ["public/*"],
        "rules": [{"repositories": ["*"], "users": ["alice"], "actions": ["*"]}],
    })
    storage = MemoryStorage()
    pushed = RegistryClient(webtest.TestApp(Registry(storage=storage))).push_image("public/app", "v1")
    app = webtest.TestApp(Registry(storage=storage, auth=HtpasswdAuth(htpasswd_path, policy=policy,
                                                                     realm="r")))
    empty = {"Authorization": "Basic Og=="}
    res = app.get("/v2/public/app/manifests/v1", headers=empty, status=200)
    assert res.headers["Docker-Content-Digest"] == pushed.digest
    for res in (app.post("/v2/public/app/blobs/uploads/", headers=empty, status=401),
                app.get("/v2/team/app/tags/list", headers=empty, status=401),
                app.get("/v2/", headers=empty, status=401)):
        assert res.json["errors"][0]["code"] == "UNAUTHORIZED"
        assert res.headers["WWW-Authenticate"] == 'Basic realm="r"'
        assert "malformed" not in res.text
