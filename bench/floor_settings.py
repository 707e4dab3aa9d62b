"""Settings for the servers the benchmark starts: the service's own, plus one URL, /bench/floor.

Only ROOT_URLCONF changes, so every other request runs exactly as in production.
"""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.floor_urls"
