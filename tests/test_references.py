"""Repository names, tags and manifest references.

Spec: oci-distribution-spec.md "Pulling manifests": ``<name>`` MUST match
``[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*(\\/[a-z0-9]+((\\.|_|__|-+)[a-z0-9]+)*)*`` (clients limit it to
about 255 characters), a tag is at most 128 characters of ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``,
and ``<tag-or-digest>`` MUST be a digest or a tag and nothing else.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, strategies as st

from docker_registry_wsgi.digests import Digest
from docker_registry_wsgi.errors import DigestInvalid, ManifestInvalid, NameInvalid, TagInvalid
from docker_registry_wsgi.references import (
    MAX_NAME_LENGTH,
    is_digest,
    parse_name,
    parse_reference,
    parse_tag,
)
from tests.unit_fixtures import FAST, SPEC_NAME, SPEC_TAG, digest_strings, repository_names, tags

# -- names ------------------------------------------------------------------------------------


@FAST
@given(name=repository_names())
def test_names_from_the_grammar_are_accepted(name: str) -> None:
    """spec "Pulling manifests": every name generated from the spec's grammar is valid."""
    assert SPEC_NAME.fullmatch(name)
    assert parse_name(name) == name


@st.composite
def mutated_names(draw: st.DrawFn) -> str:
    """A valid name broken in one of the ways hostile or sloppy clients break names."""
    name = draw(repository_names(max_components=4))
    i = draw(st.integers(0, len(name)))
    mutation = draw(
        st.sampled_from(
            [
                lambda n: n[:i] + draw(st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZ")) + n[i:],
                lambda n: n[:i] + ".." + n[i:] if n[:i][-1:].isalnum() and n[i:][:1].isalnum() else "/" + n,
                lambda n: "/" + n,
                lambda n: n + "/",
                lambda n: n + draw(st.sampled_from([".", "_", "-", "__"])),
                lambda n: draw(st.sampled_from([".", "_", "-", "__"])) + n,
                lambda n: n[:i] + "//" + n[i:] if 0 < i < len(n) else n + "//x",
                lambda n: n[:i] + "\x00" + n[i:],
                lambda n: n[:i] + "%2F" + n[i:],
                lambda n: n[:i] + "%2f" + n[i:],
                lambda n: n[:i] + "___" + n[i:] if n[:i][-1:].isalnum() and n[i:][:1].isalnum() else n + "/",
                lambda n: n[:i] + draw(st.sampled_from(" :@?#\\~é\u212a\n")) + n[i:],
                lambda n: n + "/" + "a" * (MAX_NAME_LENGTH + 1 - len(n)),
                lambda n: "",
                lambda n: n + "/..",
                lambda n: "../" + n,
                lambda n: n + "/.",
            ]
        )
    )
    return mutation(name)


@FAST
@given(name=mutated_names())
@example(name="a" * 256)
@example(name="library/" + "a" * 248)
@example(name="a/../b")
@example(name="a/./b")
@example(name="a%2Fb")
@example(name="a\x00b")
@example(name="A")
@example(name="a___b")
@example(name="a.-b")
@example(name="-a")
@example(name="a/")
@example(name="/a")
@example(name="a//b")
@example(name="\u212a")  # KELVIN SIGN lowercases to "k": must not slip through case folding
def test_mutated_names_are_name_invalid(name: str) -> None:
    """spec "Pulling manifests": uppercase, '..', leading/trailing separators, '//', NUL, %2F, >255: NAME_INVALID."""
    with pytest.raises(NameInvalid) as info:
        parse_name(name)
    assert info.value.status == 400 and info.value.code == "NAME_INVALID"


@FAST
@given(name=st.text(alphabet="ab0/._-A%\x00 ", max_size=40))
def test_names_accepted_exactly_when_the_spec_regex_matches(name: str) -> None:
    """spec "Pulling manifests": the spec's own regex (verbatim) is the oracle for arbitrary text."""
    if SPEC_NAME.fullmatch(name):
        assert parse_name(name) == name
    else:
        with pytest.raises(NameInvalid):
            parse_name(name)


def test_name_length_limit_is_255() -> None:
    """spec "Pulling manifests", implementers note: names are capped at 255 characters."""
    assert MAX_NAME_LENGTH == 255
    longest = "/".join(["a" * 63] * 4)
    assert len(longest) == 255 and parse_name(longest) == longest
    with pytest.raises(NameInvalid) as info:
        parse_name(longest + "b")
    assert info.value.detail["max_length"] == 255
    assert len(info.value.detail["name"]) < 300, "an overlong name is not echoed back whole"
    with pytest.raises(NameInvalid):
        parse_name("a" * 100_000)


@pytest.mark.parametrize(
    "name",
    ["a", "0", "library/ubuntu", "a-b", "a--b", "a_b", "a__b", "a.b", "a/b/c/d/e/f/g/h",
     "a/manifests/b", "x/blobs/uploads", "v2/tags/list", "my.registry_name-2/x"],
)
def test_valid_names(name: str) -> None:
    """spec "Pulling manifests": multi-component names and names with API words are valid."""
    assert parse_name(name) == name


# -- tags -------------------------------------------------------------------------------------


@FAST
@given(tag=tags)
def test_tags_from_the_grammar_are_accepted(tag: str) -> None:
    """spec "Pulling manifests": ``[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}``."""
    assert parse_tag(tag) == tag
    assert parse_reference(tag) == tag


@FAST
@given(tag=st.text(alphabet="aZ0_.-:/@ \x00é", max_size=140))
@example(tag="a" * 128)
@example(tag="a" * 129)
@example(tag=".a")
@example(tag="-a")
@example(tag="")
@example(tag="latest\n")
def test_tags_accepted_exactly_when_the_spec_regex_matches(tag: str) -> None:
    """spec "Pulling manifests": a tag is at most 128 characters of the spec's regex; else MANIFEST_INVALID."""
    if SPEC_TAG.fullmatch(tag):
        assert len(tag) <= 128
        assert parse_tag(tag) == tag
    else:
        with pytest.raises(TagInvalid) as info:
            parse_tag(tag)
        assert isinstance(info.value, ManifestInvalid) and info.value.code == "MANIFEST_INVALID"


def test_tag_limit_is_128() -> None:
    """spec "Pulling manifests": a tag MUST be at most 128 characters."""
    assert parse_tag("A" * 128) == "A" * 128
    with pytest.raises(TagInvalid) as info:
        parse_tag("A" * 10_000)
    assert len(str(info.value.detail)) < 300


# -- references -------------------------------------------------------------------------------


@FAST
@given(text=digest_strings())
def test_digest_references_parse_to_digests(text: str) -> None:
    """spec "Pulling manifests": ``<tag-or-digest>`` with a colon is a digest."""
    assert is_digest(text)
    reference = parse_reference(text)
    assert isinstance(reference, Digest) and str(reference) == text


@pytest.mark.parametrize("text", ["sha256:abc", "sha256:" + "A" * 64, "md5:" + "a" * 32, ":", "a:b"])
def test_bad_digest_references_are_digest_invalid(text: str) -> None:
    """spec "Pulling manifests": a reference with a colon must be a valid digest."""
    with pytest.raises(DigestInvalid):
        parse_reference(text)


@pytest.mark.parametrize("text", ["", "-latest", "a/b", "a b", "\x00", "../x", "é", "a" * 129])
def test_bad_tag_references_are_manifest_invalid(text: str) -> None:
    """spec "Pulling manifests": ``<tag-or-digest>`` MUST NOT be in any other format."""
    assert not is_digest(text)
    with pytest.raises(ManifestInvalid):
        parse_reference(text)
