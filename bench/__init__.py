"""qbot's benchmarks: ``python -m bench`` (or ``make bench``) runs every part and prints one table.

Parts (issue 6): end to end against ``qbot run`` and a hand-written aiohttp bot, dispatch scaling,
intent matching, aiogram 3 as a peer, and memory. Ratios are measured in the same run because the
machines are noisy; absolute numbers are context only. See ``bench/RESULTS.md``.
"""
