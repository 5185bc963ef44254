"""``python -m pyramid_site --file users.json add NAME --group GROUP``: manage the site's users."""

from .users import main

main()
