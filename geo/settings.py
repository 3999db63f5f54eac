"""Service settings, read from environment variables prefixed ``CMM_GEO_``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All settings; each field ``x`` is read from ``CMM_GEO_X``."""

    model_config = SettingsConfigDict(env_prefix="CMM_GEO_", extra="ignore")

    data_dir: Path = Field(
        default=Path.home() / ".local" / "share" / "cmm-geo",
        description="Where the service writes (embedded database, uploads, caches).",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostgreSQL + PostGIS database; "
        "the embedded database under data_dir when unset.",
    )
    read_database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of a PostgreSQL read replica (hot standby of database_url) "
        "that answers reads; writes (and the If-Match checks) go to database_url. A read may "
        "lag a write by the replication delay.",
    )
    admin_token: str | None = Field(default=None, description="Bearer token of the administrator.")
    base_url: str | None = Field(
        default=None, description="Public base URL used in links (derived from requests if unset)."
    )
    cors_origins: str = Field(default="*", description="Comma-separated CORS origins ('' = off).")
    host: str = "127.0.0.1"
    port: int = 8000
    tiles_url: str = Field(
        default="https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        description="Base-map tile URL template for the maps; 'none' for no base map (offline).",
    )
    max_upload_mb: float = 50.0
    max_features: int = 200_000
    max_zip_entries: int = 100
    max_unzipped_mb: float = 500.0

    # ----- limits on what a request may ask (see README "Security and limits") -----
    max_filter_length: int = Field(
        default=4096, description="Longest CQL2 filter accepted (characters), checked first."
    )
    max_filter_depth: int = Field(
        default=20, description="Deepest nesting of a CQL2 filter (parentheses, NOT, arrays)."
    )
    max_filter_terms: int = Field(
        default=64, description="Most predicates (comparisons, LIKEs…) in one CQL2 filter."
    )
    max_url_length: int = Field(
        default=8192, description="Longest request target (path + query, bytes): 414 beyond."
    )
    filter_rate_per_client: float = Field(
        default=20.0,
        ge=0,
        description="CQL2-filtered requests per second one client address may send to one "
        "worker (bursts of twice as many); 429 beyond; 0 = no limit.",
    )
    count_limit: int = Field(
        default=10_000,
        ge=0,
        description="numberMatched of a filtered /items page (bbox, CQL2, ?name=value, "
        "datetime) is counted exactly up to this many features and left out beyond (OGC "
        "allows it), so a page of a big table never costs a full count; 0 = always exact. "
        "Unfiltered pages always carry the exact number (counted once per data change).",
    )
    request_timeout_s: float = Field(
        default=15.0,
        description="Time budget of one query (PostGIS statement_timeout and the in-process "
        "deadline): 503 beyond.",
    )
    db_connect_timeout_s: float = Field(
        default=3.0, description="Seconds to wait for the database to accept a connection."
    )
    db_pool_size: int = Field(
        default=16,
        ge=1,
        le=200,
        description="Store connections each worker keeps open (as many as requests it "
        "serves at once, so none is opened and closed per request); on PostgreSQL, workers "
        "× (pool + overflow) must stay below the server's max_connections.",
    )
    async_reads: bool = Field(
        default=True,
        description="On PostgreSQL, read a feature by id, a map's box page, a short CQL2 "
        "filter's page and a vector tile on the event loop (psycopg's asynchronous "
        "connections, db_async_pool_size more per worker) instead of in a thread; on the "
        "embedded SQLite store a feature by id (one more read-only connection per "
        "worker): the same answer, a fraction of the CPU.",
    )
    db_async_pool_size: int = Field(
        default=4,
        ge=1,
        le=200,
        description="PostgreSQL connections each worker's event loop may open for the reads "
        "it does itself (async_reads); they multiplex: a few serve thousands of reads a "
        "second.",
    )
    db_parallel_workers: int = Field(
        default=0,
        ge=0,
        le=64,
        description="PostgreSQL's max_parallel_workers_per_gather on the service's "
        "connections: 0, because starting a parallel worker (~15 ms) costs more than it saves "
        "on the short queries of an API (a map page: 20 → 7 ms measured).",
    )
    read_threads: int = Field(
        default=0,
        ge=0,
        le=400,
        description="Threads of a worker that read collections' items (pages and features). "
        "0 = automatic: 40 on PostgreSQL, whose threads mostly wait for the database; on the "
        "embedded SQLite store, which works inside the process and takes Python's GIL back "
        "after every row, as many as CPUs (more threads only queue for the GIL: on 2 CPUs, "
        "2-3 threads answered 1.6-1.9x the pages of 40, and 2 answered 7-10 % more than 3).",
    )
    db_max_overflow: int = Field(
        default=4, ge=0, le=200, description="Extra connections a worker may open at peaks."
    )
    body_timeout_s: float = Field(
        default=60.0, description="Seconds a client may take to send a request body: 408 beyond."
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-Proto/"
        "Host/Prefix headers build links when base_url is unset ('' = trust none).",
    )

    @property
    def embedded_database_url(self) -> str:
        """URL of the embedded SQLite database file under ``data_dir``."""
        return _embedded_url(self.data_dir)

    @property
    def effective_database_url(self) -> str:
        """The database in use: PostGIS when configured, else the embedded file."""
        return self.database_url or self.embedded_database_url


@lru_cache(maxsize=16)
def _embedded_url(data_dir: Path) -> str:
    """Memoised: read several times per request (each store access), ~7 µs of path work."""
    return f"sqlite:///{(data_dir / 'cmm_geo.sqlite').as_posix()}"


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings (cached; call ``get_settings.cache_clear()`` in tests)."""
    return Settings()
