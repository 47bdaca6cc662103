"""crmlib.memory: freed memory goes back to the system; no data changes."""

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
