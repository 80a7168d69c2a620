"""The book layer: the only reader of a chapter's parameters.

``profiles`` (the parameter set: schema, profiles, chapter budgets), ``configs`` (what the
parameters select: the method's configurations), ``store`` (artifacts and the ledger), ``studies``
and ``sweep`` (the robustness studies on Dask), ``verdicts`` (every verdict rule), ``findings``
(every sentence a chapter glues), ``plots``, ``explorer`` (the layer explorer), ``runner`` (execute
the chapters, build and publish the book: ``python -m igan_utils.book``), ``commands``.
"""
