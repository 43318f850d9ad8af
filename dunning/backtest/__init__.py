"""Policy backtest: simulated failed renewals driven through the real retry engine.

Pure Python and no database (except ``--from-ledger``, which reads the ledger to
estimate a world); see docs/backtest.md for the world and its sources.
"""
