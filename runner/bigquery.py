"""The runner's BigQuery side: settings, Cloud Storage uploads, load jobs into landing tables, ledger reads.

Everything else (tables, the merge, ledger writes, the month lease) is the dbt macros' work,
as on Postgres. Settings come from the environment, the same variables the dbt profile's `bq`
target reads, so the runner and dbt always talk to the same project and dataset.
Against emulators (BIGQUERY_EMULATOR_HOST, STORAGE_EMULATOR_HOST) no credentials are used.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from runner.csvfile import FileError, describe
from runner.project import Month, Project, TaxiSpec
from runner.warehouse import MonthStates, WarehouseError

UPLOAD_CHUNK = 8 << 20  # resumable upload chunks: progress per chunk, a retry resends one chunk
SETTINGS_HELP = "see README, section BigQuery"


def is_busy(error: Exception) -> bool:
    """Google's view: the service failed on its side (5xx) or asked us to slow down (429)."""
    from google.api_core.exceptions import ServerError, TooManyRequests

    return isinstance(error, ServerError | TooManyRequests)


class ConfigError(Exception):
    """A setting is missing or wrong; the message names the environment variable."""


@dataclass(frozen=True)
class GcpConfig:
    """The BigQuery target in one place (the reference keeps these in Kestra's KV store)."""

    project: str
    location: str
    dataset: str
    bucket: str | None
    credentials_file: str | None  # a service-account key file; None: application default credentials

    @classmethod
    def from_env(cls, dataset: str, need_bucket: bool = True) -> GcpConfig:
        """The settings the runner's clients need beside dbt's; the dataset is the project's (dbt's
        profile names it: BQ_DATASET, default nyc_taxi)."""
        env = os.environ
        project = env.get("GCP_PROJECT") or env.get("GOOGLE_CLOUD_PROJECT")
        if not project:
            raise ConfigError(f"GCP_PROJECT is not set: the Google Cloud project id ({SETTINGS_HELP})")
        bucket = env.get("GCS_BUCKET") or None
        if need_bucket and not bucket:
            raise ConfigError(
                f"GCS_BUCKET is not set: the bucket month files are uploaded to ({SETTINGS_HELP})"
            )
        credentials_file = env.get("GOOGLE_APPLICATION_CREDENTIALS") or None
        if credentials_file and not Path(credentials_file).is_file():
            raise ConfigError(
                f"GOOGLE_APPLICATION_CREDENTIALS names {credentials_file}, which is not a readable file"
            )
        return cls(
            project=project,
            location=env.get("GCP_LOCATION", "US"),
            dataset=dataset,
            bucket=bucket,
            credentials_file=credentials_file,
        )

    @property
    def emulated(self) -> bool:
        return bool(os.environ.get("BIGQUERY_EMULATOR_HOST"))

    def describe(self) -> str:
        """For logs: where, and which kind of credentials; never the credentials themselves."""
        auth = (
            "emulator, no credentials"
            if self.emulated
            else "service-account key file"
            if self.credentials_file
            else "application default credentials"
        )
        bucket = f", bucket gs://{self.bucket}" if self.bucket else ""
        return f"BigQuery project {self.project}, dataset {self.dataset} ({self.location}){bucket}; {auth}"

    def credentials(self) -> Any:
        if self.emulated:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:  # honours GOOGLE_APPLICATION_CREDENTIALS, then gcloud's application default login
            credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        except DefaultCredentialsError as error:
            raise ConfigError(
                "no Google credentials: run `gcloud auth application-default login`, or set "
                f"GOOGLE_APPLICATION_CREDENTIALS to a service-account key file ({SETTINGS_HELP})"
            ) from error
        return credentials


class _Progress:
    """A file object that reports how far it has been read (the upload's progress)."""

    def __init__(self, raw: IO[bytes], progress: Callable[[int], None]) -> None:
        self._raw, self._progress = raw, progress

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self._progress(self._raw.tell())
        return data

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


@dataclass
class BigQueryWarehouse(MonthStates):
    config: GcpConfig
    landing_dataset: str
    landing_expiry_days: int  # the project's var landing_expiry_days
    _bigquery: Any = None
    _storage: Any = None
    _ledger_exists: bool = False  # once seen it stays: dbt creates the ledger and never drops it

    @classmethod
    def for_project(cls, project: Project, config: GcpConfig | None = None) -> BigQueryWarehouse:
        config = config or GcpConfig.from_env(project.schema)
        return cls(
            config=config,
            landing_dataset=project.landing_schema,
            landing_expiry_days=project.landing_expiry_days,
        )

    @property
    def bigquery(self) -> Any:
        if self._bigquery is None:
            from google.cloud import bigquery

            self._bigquery = bigquery.Client(
                project=self.config.project,
                location=self.config.location,
                credentials=self.config.credentials(),
            )
        return self._bigquery

    @property
    def storage(self) -> Any:
        if self._storage is None:
            from google.cloud import storage

            self._storage = storage.Client(project=self.config.project, credentials=self.config.credentials())
        return self._storage

    @contextmanager
    def runner_lock(self, taxi: str, month: Month) -> Iterator[None]:
        """Nothing to take here: the month's lease in the ledger (tripdata_begin_load) serialises loads,
        and no session outlives a call to name as the load's loader."""
        yield None

    @contextmanager
    def merge_lock(self) -> Iterator[None]:
        """One month's merge at a time from this machine (across --jobs worker processes).

        Each merge is a transaction that changes the main table and the ledger, and BigQuery cancels
        one of two such transactions that overlap, where Postgres would make one wait. A merge that
        another runner or Kestra cancels anyway fails its month as transient, and it is retried.
        """
        import fcntl
        import hashlib
        import tempfile

        target = f"{self.config.project}.{self.config.dataset}"
        name = f"nyc-taxi-bq-merge-{hashlib.sha256(target.encode()).hexdigest()[:16]}.lock"
        with open(Path(tempfile.gettempdir()) / name, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes, or the process dies
            yield

    @contextmanager
    def models_lock(self) -> Iterator[None]:
        """Nothing to take: dbt-bigquery's temporary tables carry a timestamp, so builds do not collide."""
        yield

    def close(self) -> None:
        for client in (self._bigquery, self._storage):
            if client is not None and hasattr(client, "close"):
                client.close()
        self._bigquery = self._storage = None

    # --- set-up -------------------------------------------------------------------------------

    def setup(self) -> list[str]:
        """Create the bucket and both datasets when missing; returns what was done, one line each."""
        from google.api_core.exceptions import Conflict, NotFound
        from google.cloud import bigquery

        done = []
        if self.config.bucket:
            try:
                self.storage.get_bucket(self.config.bucket)
                done.append(f"bucket gs://{self.config.bucket}: exists, left as it is")
            except NotFound:
                try:
                    self.storage.create_bucket(self.config.bucket, location=self.config.location)
                    done.append(f"bucket gs://{self.config.bucket}: created in {self.config.location}")
                except Conflict as error:  # bucket names are global: someone else's bucket
                    raise ConfigError(
                        f"bucket gs://{self.config.bucket} exists in another project or is not yours: "
                        "choose another GCS_BUCKET"
                    ) from error
        for name in (self.config.dataset, self.landing_dataset):
            dataset_id = f"{self.config.project}.{name}"
            try:
                self.bigquery.get_dataset(dataset_id)
                done.append(f"dataset {dataset_id}: exists, left as it is")
            except NotFound:
                dataset = bigquery.Dataset(dataset_id)
                dataset.location = self.config.location
                if name == self.landing_dataset:
                    dataset.default_table_expiration_ms = self.landing_expiry_days * 24 * 3600 * 1000
                self.bigquery.create_dataset(dataset, exists_ok=True)
                done.append(f"dataset {dataset_id}: created in {self.config.location}")
        return done

    # --- landing ------------------------------------------------------------------------------

    def object_name(self, spec: TaxiSpec, month: Month) -> str:
        """The object dbt reads too: gs://<bucket>/<taxi>/<file> (the landing source's external location)."""
        return f"{spec.name}/{spec.filename(month)}"

    def upload(
        self, spec: TaxiSpec, month: Month, path: Path, checksum: str, progress: Callable[[int], None]
    ) -> str:
        """Upload the gzipped file as published, unless the bucket holds the same bytes already."""
        from google.api_core.exceptions import GoogleAPIError

        bucket = self.storage.bucket(self.config.bucket)
        name = self.object_name(spec, month)
        uri = f"gs://{self.config.bucket}/{name}"
        size = path.stat().st_size
        try:
            existing = bucket.get_blob(name)
            if (
                existing is not None
                and (existing.metadata or {}).get("sha256") == checksum
                and existing.size == size
            ):
                progress(size)
                return uri
            blob = bucket.blob(name, chunk_size=UPLOAD_CHUNK)
            blob.metadata = {"sha256": checksum}
            with path.open("rb") as raw:
                blob.upload_from_file(
                    _Progress(raw, progress),
                    size=size,
                    content_type="application/gzip",
                    # conditional on the object we saw: safe to retry, and no race with another uploader
                    if_generation_match=existing.generation if existing is not None else 0,
                )
        except GoogleAPIError as error:
            raise WarehouseError(
                f"{describe(spec, month)}: upload to {uri} failed: {error}", transient=is_busy(error)
            ) from error
        return uri

    def begin_load_options(self) -> dict[str, Any]:
        return {}

    def land(
        self, spec: TaxiSpec, month: Month, path: Path, checksum: str, progress: Callable[[int], None]
    ) -> dict[str, Any]:
        """Upload, then one load job replaces the landing table's rows (atomic: all rows or none)."""
        from google.api_core.exceptions import BadRequest, GoogleAPIError
        from google.cloud import bigquery

        uri = self.upload(spec, month, path, checksum, progress)
        table_id = f"{self.config.project}.{self.landing_dataset}.{spec.landing_table(month)}"
        try:
            # the landing table's types are the macros' (bigquery__create_landing_table)
            schema = self.bigquery.get_table(table_id).schema
            job = self.bigquery.load_table_from_uri(
                uri,
                table_id,
                job_config=bigquery.LoadJobConfig(
                    source_format=bigquery.SourceFormat.CSV,
                    skip_leading_rows=1,
                    schema=schema,
                    write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
                    create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
                ),
            )
            job.result()
        except BadRequest as error:
            detail = "; ".join(e.get("message", "") for e in (error.errors or [])) or str(error)
            raise FileError(
                f"{describe(spec, month)}: BigQuery rejected {uri}: {' '.join(detail.split())}"
            ) from error
        except GoogleAPIError as error:
            raise WarehouseError(
                f"{describe(spec, month)}: load job from {uri} failed: {error}", transient=is_busy(error)
            ) from error
        return {}

    # --- the ledger ---------------------------------------------------------------------------

    def _table(self, relation: str) -> Any | None:
        """A table or view by dbt's relation name (`project`.`dataset`.`name`), or None if missing."""
        from google.api_core.exceptions import NotFound

        try:
            return self.bigquery.get_table(relation.replace("`", ""))
        except NotFound:
            return None

    def _query(
        self, query: str, params: dict[str, Any] | None = None, needs: str | None = None
    ) -> list[dict[str, Any]] | None:
        """Rows as dicts; None when the relation the query needs (default: the ledger) does not exist."""
        from google.cloud import bigquery

        ledger = f"`{self.config.project}.{self.config.dataset}.load_ledger`"
        if needs is not None:
            if self._table(needs) is None:
                return None
        elif not self._ledger_exists:  # no ledger yet: nothing loaded (a query would fail)
            if self._table(ledger) is None:
                return None
            self._ledger_exists = True
        types = {str: "STRING", int: "INT64"}
        job_config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter(
                    name, "DATE" if name == "file_month" else types[type(value)], value
                )
                for name, value in (params or {}).items()
            ]
        )
        rows = self.bigquery.query(query.replace("{ledger}", ledger), job_config=job_config).result()
        return [dict(row.items()) for row in rows]

    def load(self, load_id: str) -> dict[str, Any] | None:
        rows = self._query("select * from {ledger} where load_id = @load_id", {"load_id": load_id})
        return rows[0] if rows else None

    def model_loads(self, relation: str) -> list[dict[str, Any]] | None:
        """The model_loads view (dbt's relation name), or None when the models were never built."""
        return self._query(f"select * from {relation}", needs=relation)

    def relation_comment(self, relation: str) -> str | None:
        table = self._table(relation)
        return table.description if table is not None else None

    def current_loads(
        self, rule: str, taxi: str | None = None, month: Month | None = None
    ) -> list[dict[str, Any]]:
        """The months' current loads: `rule` is the ledger's reading rule as dbt compiled it
        (macros/common/ledger.sql current_loads); one taxi and month, or all of them."""
        if taxi is None or month is None:
            return self._query(f"select * from ({rule}) as current_loads") or []
        return (
            self._query(
                f"select * from ({rule}) as current_loads where taxi = @taxi and file_month = @file_month",
                {"taxi": taxi, "file_month": month.first_day},
            )
            or []
        )
