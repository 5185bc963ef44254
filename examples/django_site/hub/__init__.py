"""The site's one app: its home page, and the permissions that govern the registry."""
