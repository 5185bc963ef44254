"""An example Django project whose users log in to a container registry at /v2/."""
