"""The pushdown expressions run unchanged on Spark (PySpark in local mode) and agree with DuckDB.

Spark reads the sample's clean heavy tables as Parquet (with ``_pos``, the export order,
since Spark keeps no row order) and runs the same Ibis expressions as DuckDB; every
aggregate must be equal (counts exactly, money and days to 1e-9 relative). Needs Java 17+.
"""

import pandas as pd
import pytest

from helpers import SAMPLE
from crmlib.data import open_data
from crmlib.periods import as_of_instant
from crmlib.pushdown import backends

TZ = "Europe/Berlin"  # a zone with summer time: the local weeks go through the offset steps


@pytest.fixture(scope="module")
def spark(tmp_path_factory):
    session = backends.spark_session(master="local[2]", warehouse=tmp_path_factory.mktemp("warehouse"))
    yield session
    session.stop()


@pytest.fixture(scope="module")
def parquet_folder(tmp_path_factory):
    data = open_data(SAMPLE, timezone=TZ)
    folder = tmp_path_factory.mktemp("sample_parquet")
    for name in backends.HEAVY_TABLES:
        df = data.tables[name]
        df.assign(**{backends.POSITION: range(len(df))}).to_parquet(folder / f"{name}.parquet", index=False)
    return folder


def test_spark_runs_the_duckdb_expressions_and_gets_the_same_numbers(spark, parquet_folder):
    as_of = as_of_instant("2026-09-27", TZ)
    con = backends.connect("pyspark", session=spark)
    on_spark = backends.run(con, backends.parquet_tables(con, parquet_folder), as_of=as_of, timezone=TZ)
    duck = backends.connect("duckdb")
    on_duckdb = backends.run(duck, backends.parquet_tables(duck, parquet_folder), as_of=as_of, timezone=TZ)
    assert set(on_spark) == set(on_duckdb) == {"activity_weeks", "deal_activity", "activity_firsts",
                                               "stage_durations", "customer_orders"}
    for name in on_spark:
        assert len(on_spark[name]) > 0, name
        pd.testing.assert_frame_equal(on_spark[name], on_duckdb[name], check_exact=False, rtol=1e-9,
                                      obj=name)
