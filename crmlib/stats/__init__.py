"""Statistics with honesty: intervals on rates, survival, forecasts, win probabilities, CLV.

One module per method (``intervals``, later ``survival``, ``forecast``, ``winprob``,
``clv``, ``regression``). Results are small frozen dataclasses that carry the estimate,
its interval and the n, with ``to_frame()`` and ``summary()``, in the manner of
statsmodels results. Nothing here reads files, prints or plots.
"""
