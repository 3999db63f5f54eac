"""HTTP layer (FastAPI): parses requests, calls ``geo``, formats answers. Nothing more."""
