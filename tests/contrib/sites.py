"""What every example site must do, as tests shared by the Flask, Pyramid and Django modules.

A framework's test module provides module-scoped fixtures ``site`` (the example served by
gunicorn), ``accounts`` (the site users made with the site's own tooling) and ``host_page``
(a text its home page shows), and subclasses :class:`SiteContract` as ``Test<Framework>Site``.

Spec references: Docker Registry HTTP API V2 ("API Version Check": ``GET /v2/`` answers 200, or
401 with a ``WWW-Authenticate`` challenge) and the OCI Distribution Spec v1.1 ("Pull", "Push",
error code ``DENIED``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.clients import ClientError, Skopeo
from tests.support.oci_images import OCI_INDEX, OCI_MANIFEST, OciImage, assert_same_image
from tests.support.servers import ServerProcess

REPOSITORY = "team/app"
API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
MANIFEST_ACCEPT = f"{OCI_INDEX}, {OCI_MANIFEST}"


@dataclass(frozen=True)
class Accounts:
    """Site users: ``publisher`` may push and pull, ``reader`` only pull, ``member`` neither."""

    publisher: tuple[str, str]
    reader: tuple[str, str]
    member: tuple[str, str]

    @staticmethod
    def creds(user: tuple[str, str]) -> str:
        return f"{user[0]}:{user[1]}"


def get(site: ServerProcess, path: str, auth: tuple[str, str] | None = None,
        method: str = "GET", headers: dict[str, str] | None = None) -> requests.Response:
    return requests.request(method, site.url + path, auth=auth, headers=headers or {},
                            timeout=60, allow_redirects=False)


class SiteContract:
    """The tests each example site must pass."""

    @pytest.fixture(scope="class")
    def pushed(self, site: ServerProcess, accounts: Accounts, oci_image: OciImage) -> str:
        """The publisher pushes the multi-platform image with ``skopeo copy --all``."""
        from tests.support.tools import require_tool

        skopeo = Skopeo(require_tool("skopeo", "apt-get install -y skopeo"), site.hostport)
        try:
            skopeo.copy("--all", "--preserve-digests", f"--dest-creds={Accounts.creds(accounts.publisher)}",
                        oci_image.reference, skopeo.docker(REPOSITORY, "v1"))
        except ClientError as exc:
            raise ClientError(f"{exc}\n--- site log ---\n{site.log_text()[-8000:]}") from None
        return REPOSITORY

    def test_host_page_still_renders(self, site: ServerProcess, host_page: str) -> None:
        response = get(site, "/")
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith("text/html")
        assert host_page in response.text
        assert API_VERSION[0] not in response.headers  # the site answered, not the registry

    @pytest.mark.parametrize("path", ["/v2x", "/v20/team/app/tags/list"])
    def test_near_registry_paths_get_the_sites_own_404(self, site: ServerProcess, path: str) -> None:
        response = get(site, path)
        assert response.status_code == 404
        assert response.headers["Content-Type"].startswith("text/html")
        assert API_VERSION[0] not in response.headers

    def test_v2_challenges_anonymous_callers(self, site: ServerProcess) -> None:
        response = get(site, "/v2/")
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        assert response.headers[API_VERSION[0]] == API_VERSION[1]
        assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"

    def test_v2_answers_as_a_registry_for_a_site_user(self, site: ServerProcess, accounts: Accounts) -> None:
        for path in ("/v2/", "/v2"):
            response = get(site, path, auth=accounts.member)
            assert response.status_code == 200, (path, response.text)
            assert response.headers[API_VERSION[0]] == API_VERSION[1]

    def test_wrong_password_is_refused(self, site: ServerProcess, accounts: Accounts, skopeo: Skopeo,
                                       tmp_path: Path) -> None:
        name = accounts.publisher[0]
        response = get(site, "/v2/", auth=(name, "not-" + accounts.publisher[1]))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
        result = skopeo.copy("--all", f"--src-creds={name}:wrong", skopeo.docker(REPOSITORY, "v1"),
                             f"oci:{tmp_path / 'never'}:v1", check=False)
        assert result.returncode != 0
        assert "401" in result.stderr or "unauthorized" in result.stderr.lower()

    def test_unknown_user_is_refused(self, site: ServerProcess) -> None:
        assert get(site, "/v2/", auth=("nobody-here", "x")).status_code == 401

    def test_publisher_pushes_and_pulls_back_byte_for_byte(
        self, pushed: str, site: ServerProcess, accounts: Accounts, skopeo: Skopeo,
        oci_image: OciImage, tmp_path: Path,
    ) -> None:
        pulled = tmp_path / "pulled"
        skopeo.copy("--all", "--preserve-digests", f"--src-creds={Accounts.creds(accounts.publisher)}",
                    skopeo.docker(pushed, "v1"), f"oci:{pulled}:v1")
        assert assert_same_image(oci_image.path, "v1", pulled, "v1") == len(oci_image.blobs)
        response = get(site, f"/v2/{pushed}/manifests/v1", auth=accounts.publisher,
                       headers={"Accept": MANIFEST_ACCEPT})
        assert response.status_code == 200
        assert response.headers["Docker-Content-Digest"] == oci_image.index.digest
        assert response.content == oci_image.blob_bytes(oci_image.index.digest)

    def test_reader_pulls_but_may_not_push(
        self, pushed: str, site: ServerProcess, accounts: Accounts, skopeo: Skopeo,
        oci_image: OciImage, tmp_path: Path,
    ) -> None:
        pulled = tmp_path / "pulled"
        skopeo.copy("--all", f"--src-creds={Accounts.creds(accounts.reader)}", "--preserve-digests",
                    skopeo.docker(pushed, "v1"), f"oci:{pulled}:v1")
        assert_same_image(oci_image.path, "v1", pulled, "v1")

        start = get(site, f"/v2/{pushed}/blobs/uploads/", auth=accounts.reader, method="POST")
        assert start.status_code == 403, start.text
        assert start.json()["errors"][0]["code"] == "DENIED"
        result = skopeo.copy("--all", f"--dest-creds={Accounts.creds(accounts.reader)}",
                             oci_image.reference, skopeo.docker("team/readers-copy", "v1"), check=False)
        assert result.returncode != 0
        assert "denied" in result.stderr.lower() or "403" in result.stderr

    def test_member_without_permission_may_not_pull(
        self, pushed: str, site: ServerProcess, accounts: Accounts, skopeo: Skopeo, tmp_path: Path,
    ) -> None:
        response = get(site, f"/v2/{pushed}/manifests/v1", auth=accounts.member,
                       headers={"Accept": MANIFEST_ACCEPT})
        assert response.status_code == 403, response.text
        assert response.json()["errors"][0]["code"] == "DENIED"
        result = skopeo.copy("--all", f"--src-creds={Accounts.creds(accounts.member)}",
                             skopeo.docker(pushed, "v1"), f"oci:{tmp_path / 'never'}:v1", check=False)
        assert result.returncode != 0

    def test_anonymous_pull_is_challenged(self, pushed: str, site: ServerProcess) -> None:
        response = get(site, f"/v2/{pushed}/manifests/v1", headers={"Accept": MANIFEST_ACCEPT})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Basic ")
