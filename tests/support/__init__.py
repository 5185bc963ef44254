"""Helpers shared by the test suites: servers on free loopback ports, OCI layouts, tool lookup.

- :mod:`tests.support.servers`: ``free_port``, ``wait_for_port``, ``wait_for_http``,
  :class:`~tests.support.servers.ServerProcess` (any command as a server) and
  :class:`~tests.support.servers.RegistryServer` (the standalone registry).
- :mod:`tests.support.oci_images`: a deterministic multi-platform OCI image layout built offline,
  layout comparison, and files for OCI artifacts.
- :mod:`tests.support.tools`: find an external tool (``skopeo``) or skip locally / fail under CI.
"""
