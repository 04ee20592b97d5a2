"""tusserver: a resumable-upload server speaking tus 1.0.0, with Redis state and local or S3 data.

gunicorn runs `tusserver:create_app()`; `tusserver serve` does that for you.
"""

from .app import create_app

__all__ = ["create_app"]
__version__ = "0.1.0"
