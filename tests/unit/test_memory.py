"""crmlib.memory: freed memory goes back to the system; no data changes."""

import numpy as np
import pandas as pd

from crmlib import memory


def test_release_keeps_every_frame_intact():
    df = pd.DataFrame({"id": ["007", "010"], "x": [1.5, 2.5]})
    before = df.copy()
    big = pd.Series(range(1_000_000)).astype("str")
    del big
    memory.release()
    pd.testing.assert_frame_equal(df, before)


def test_outside_ipython_no_hook_is_registered():
    assert memory.release_after_each_cell() is False


def test_in_ipython_the_hook_is_registered_once_and_runs_after_a_cell():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    try:
        assert memory.release_after_each_cell() is True
        assert memory.release_after_each_cell() is True  # a re-run first cell: still one hook
        hooks = [h for h in shell.events.callbacks["post_run_cell"] if h.__name__ == "_release_after_cell"]
        assert len(hooks) == 1
        result = shell.run_cell("x = [str(i) for i in range(1000)]\nlen(x)")
        assert result.success and result.result == 1000
    finally:
        InteractiveShell.clear_instance()


def test_one_chunk_joins_text_columns_read_in_row_groups_without_changing_them(tmp_path):
    n = 5_000
    frame = pd.DataFrame({"id": pd.Series([f"0{i:05d}" for i in range(n)], dtype="str"),
                          "kind": pd.Series(["call", None, "Email "] * (n // 3) + ["x"] * (n % 3), dtype="str"),
                          "amount": np.arange(n, dtype="float64")})
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, row_group_size=700)
    read = pd.read_parquet(path)
    assert read["id"].array.__arrow_array__().num_chunks > 1  # the file's row groups
    joined = memory.one_chunk(read.copy())
    for col in ("id", "kind"):
        assert joined[col].array.__arrow_array__().num_chunks == 1
    pd.testing.assert_frame_equal(joined, read)  # same values, dtypes, missing values and index
    pd.testing.assert_frame_equal(joined.iloc[[4_999, 0, 2_500]], read.iloc[[4_999, 0, 2_500]])
    assert pd.isna(joined.loc[1, "kind"]) and joined.loc[0, "id"] == "000000"


def test_reading_a_file_column_by_column_gives_what_pandas_reads(tmp_path):
    """Every canonical dtype, missing values, zero-padded ids, text in one block; a subset of
    columns; a file written with its own index and an empty file read as pandas reads them."""
    n = 3_000
    frame = pd.DataFrame({
        "id": pd.Series([f"0{i:05d}" for i in range(n)], dtype="str"),
        "kind": pd.Series(["call", None, "Email "] * (n // 3), dtype="str"),
        "amount": np.where(np.arange(n) % 7 == 0, np.nan, np.arange(n, dtype="float64")),
        "count": np.arange(n, dtype="int64"),
        "flag": pd.array([True, False, None] * (n // 3), dtype="boolean"),
        "at": pd.Series(pd.date_range("2026-01-01", periods=n, freq="h", tz="Europe/Berlin")).dt.as_unit("us")
              .where(np.arange(n) % 5 != 0),
    })
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False, row_group_size=400)
    lean = memory.read_parquet_lean(path)
    pd.testing.assert_frame_equal(lean, pd.read_parquet(path))
    pd.testing.assert_frame_equal(lean, frame)
    assert lean["id"].array.__arrow_array__().num_chunks == 1
    pd.testing.assert_frame_equal(memory.read_parquet_lean(path, columns=["at", "id"]),
                                  pd.read_parquet(path, columns=["at", "id"]))
    indexed = frame.set_index("id")
    indexed.to_parquet(tmp_path / "i.parquet")
    pd.testing.assert_frame_equal(memory.read_parquet_lean(tmp_path / "i.parquet"), indexed)
    frame.iloc[10:20].to_parquet(tmp_path / "r.parquet")  # a RangeIndex starting at 10
    pd.testing.assert_frame_equal(memory.read_parquet_lean(tmp_path / "r.parquet"), frame.iloc[10:20])
    frame.head(0).to_parquet(tmp_path / "e.parquet", index=False)
    pd.testing.assert_frame_equal(memory.read_parquet_lean(tmp_path / "e.parquet"),
                                  pd.read_parquet(tmp_path / "e.parquet"))


def test_a_text_column_with_few_values_reads_as_categories_in_text_order(tmp_path):
    """Hand-made: three values and a missing one become a Categorical whose categories are in
    sorted order (so sorting by it sorts as the text does) and whose values, missing
    included, are the text's; a column with more distinct values than allowed, numbers and
    times are read as before."""
    import pyarrow as pa

    chunks = pa.chunked_array([pa.array(["won", None, "lost"]), pa.array(["open", "won", "lost"])])
    cat = memory.as_categorical(chunks, most=3)
    assert list(cat.categories) == ["lost", "open", "won"]
    assert list(cat.codes) == [2, -1, 0, 1, 2, 0]
    assert cat.categories.dtype == "str"
    assert memory.as_categorical(chunks, most=2) is None  # three values: too many
    late = pa.array(["a"] * 10 + [f"id{i}" for i in range(5)])  # the first rows alone do not tell
    assert memory.as_categorical(late, most=3) is None
    assert list(memory.as_categorical(late, most=6).categories) == ["a"] + [f"id{i}" for i in range(5)]
    empty = memory.as_categorical(pa.chunked_array([pa.array([None, None], type=pa.string())]), most=1)
    assert len(empty.categories) == 0 and pd.isna(empty).all()

    n = 2_000
    frame = pd.DataFrame({
        "id": pd.Series([f"0{i:05d}" for i in range(n)], dtype="str"),
        "status": pd.Series(["won", "lost", None, "open"] * (n // 4), dtype="str"),
        "owner": pd.Series([f"U{i % 30:03d}" for i in range(n)], dtype="str"),
        "amount": np.arange(n, dtype="float64"),
    })
    path = tmp_path / "t.parquet"
    frame.to_parquet(path, index=False, row_group_size=300)
    lean = memory.read_parquet_lean(path, categories_below=0.01)  # at most 20 distinct values
    assert lean["status"].dtype == "category" and lean["owner"].dtype == "str" and lean["id"].dtype == "str"
    pd.testing.assert_frame_equal(lean.astype({"status": "str"}), frame)
    assert lean["status"].isna().sum() == n // 4
    assert lean.sort_values(["status", "id"]).index.equals(frame.sort_values(["status", "id"]).index)
    wider = memory.read_parquet_lean(path, columns=["owner", "amount"], categories_below=0.02)
    assert wider["owner"].dtype == "category" and wider["amount"].dtype == "float64"
    pd.testing.assert_frame_equal(wider.astype({"owner": "str"}), frame[["owner", "amount"]])
    pd.testing.assert_frame_equal(memory.read_parquet_lean(path), frame)  # not asked: text stays text
