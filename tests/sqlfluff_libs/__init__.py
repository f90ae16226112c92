"""Stand-ins for dbt's `target`, `adapter`, `model` and `graph` when sqlfluff lints models (jinja templater).

The jinja templater renders without dbt: a dispatched macro renders as a call of its name
(`month_start(pickup)`), which parses as SQL. What dbt really compiles for each warehouse is
linted in tests/test_static_sql.py and tests/test_bigquery_sql.py.
"""

from types import SimpleNamespace

target = SimpleNamespace(type="postgres", name="lint", schema="nyc_taxi", database="nyc_taxi")


class _Adapter:
    def dispatch(self, macro_name: str, macro_namespace: str | None = None):
        def render(*args: object) -> str:
            return f"{macro_name}({', '.join(str(arg) for arg in args)})"

        return render

    def get_columns_in_relation(self, relation: object) -> list[SimpleNamespace]:
        """The columns the incremental filters ask about: they render their fullest branch."""
        return [SimpleNamespace(name="file_month"), SimpleNamespace(name="load_id")]


adapter = _Adapter()


def var(name: str, default: object = None) -> object:
    """No --vars when linting: every var takes its default (a plain `dbt build`)."""
    return default


class _Exceptions:
    @staticmethod
    def raise_compiler_error(message: str) -> None:
        raise RuntimeError(message)


exceptions = _Exceptions()


# The model being rendered: incremental filters read the taxi types it holds from its tags.
model = SimpleNamespace(tags=["green"])
# dbt's graph, as far as the models' macros read it: one taxi type in the landing source.
_GREEN = SimpleNamespace(source_name="landing", name="green_tripdata")
graph = SimpleNamespace(sources={"source.nyc_taxi.landing.green_tripdata": _GREEN})
